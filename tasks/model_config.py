"""A model's `config.json`, found offline, and the GPU facts the pre-flight planners share
(`longact train --plan`, `longact eval --plan`): they size memory and time from the architecture
alone, without weights.

    from tasks.model_config import load_model_config
    cfg = load_model_config("Qwen/Qwen3-8B")    # dict: hidden_size, num_hidden_layers, ...

Where a name is looked up, in order: a local model directory (`<dir>/config.json`); the configs
shipped with the project for the GPU presets' models (`tasks/model_configs/<org>/<name>/config.json`,
the published architecture numbers); the Hugging Face cache (`$HF_HUB_CACHE`, else
`$HF_HOME/hub`, else `~/.cache/huggingface/hub`). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tasks.data_io import looks_local
from tasks.errors import UserError

SHIPPED = Path(__file__).resolve().parent / "model_configs"


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def model_config_path(model: str) -> Path:
    """The config.json for `model` (a directory or a hub id), or a UserError saying where to put one."""
    if looks_local(model):
        path = Path(model).expanduser() / "config.json"
        if path.is_file():
            return path
        raise UserError(f"model={model}: no config.json in that directory; give a model directory that has one")
    shipped = SHIPPED / model / "config.json"
    if shipped.is_file():
        return shipped
    cached = sorted((_hub_cache() / f"models--{model.replace('/', '--')}" / "snapshots").glob("*/config.json"))
    if cached:
        return cached[-1]
    raise UserError(f"model={model}: no config.json offline; put the model's config.json at {shipped} "
                    f"(or give a local model directory)")


def load_model_config(model: str) -> dict:
    path = model_config_path(model)
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable config.json ({e})") from None
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if key not in config:
            raise UserError(f"{path}: field {key!r} missing (a decoder config.json has it)")
    return config


# ---- GPUs ---------------------------------------------------------------------------------------

GiB = 2**30
# Memory torch sees on one GPU (nvidia-smi's total): H200 143,771 MiB ("141 GB"), H100 SXM 81,559 MiB ("80 GB").
GPUS = {"h200": 143_771 / 1024, "h100": 81_559 / 1024}
PEAK_BF16_TFLOPS = 989.0  # H100 / H200 SXM, dense bf16
ENGINE_ACTIVATION_GIB = 2.0  # a vLLM engine's own forward at its batched-token limit, CUDA graphs, sampler


def gpu_memory(name: str) -> tuple[str, float]:
    """`h200`, `h100` or a number of GiB -> (label, GiB)."""
    if name.lower() in GPUS:
        return name.upper(), GPUS[name.lower()]
    try:
        gib = float(name)
    except ValueError:
        raise UserError(f"--gpu: expected {', '.join(GPUS)} or a number of GiB, got {name!r}") from None
    if gib <= 0:
        raise UserError(f"--gpu: GPU memory must be > 0 GiB, got {name}")
    return f"{gib:g} GiB", gib


def kv_bytes_per_token(config: dict, dtype_bytes: int = 2) -> int:
    """K and V of every layer for one token (bf16 by default)."""
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes
