"""The trainer's typed config: dataclass defaults < YAML preset < `key=value` overrides.

    from training.config import load_config
    cfg = load_config("training/configs/tiny-cpu.yaml", ["model=models/tiny-qwen3", "mask.keep_ratio=0.3"])

Overrides are dotted for nested fields (mask.strategy=random); unknown keys (in the mappings
too: `algo.loss_kwargs` against the chosen loss, `vllm` against vLLM's engine arguments), wrong
types and out-of-range values are errors naming the key (`ConfigError`, a one-line user error),
before any model loads. `longact train --dry-run` prints the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tasks.data_io import looks_local
from tasks.errors import ConfigError
from training import losses as L
from training import parallel
from training.data import SOURCES, DataConfig
from training.mask import MaskConfig
from training.rollout import SamplingConfig


@dataclass
class AlgoConfig:
    advantage: str = "grpo"
    policy_loss: str = "ppo_clip"
    aggregation: str = "seq_mean_token_mean"
    eps_low: float = 0.2
    eps_high: float = 0.2
    loss_kwargs: dict = field(default_factory=dict)  # e.g. clip_ratio for clip_cov
    kl_coef: float = 0.0
    # verl's numerical guards (ppo_clip and the k3 KL term; 0 turns one off)
    dual_clip_c: float = 3.0  # dual-clip: a token with A < 0 loses at most -A * c (c > 1)
    log_ratio_clamp: float = 20.0  # log(pi/pi_old) and the KL's log-ratio clamped to +-this before exp
    kl_clamp: float = 10.0  # per-token k3 estimate clamped to at most this
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, refill
    max_refills: int = 2
    overlong_max: int = 0  # DAPO overlong shaping; 0 = off
    overlong_cache: int = 0


@dataclass
class TrainConfig:
    model: str = ""
    out_dir: str = "runs/tiny"
    seed: int = 0
    steps: int = 3
    prompts_per_step: int = 2
    group_size: int = 4
    micro_batch: int = 4  # at most this many rows per micro-batch
    max_tokens_per_micro_batch: int = 0  # and at most this many tokens (rows packed, no padding); 0 = no limit
    gradient_checkpointing: bool = False  # recompute each decoder layer in backward (on in the GPU presets)
    attn_implementation: str = ""  # transformers' attention ("" = its default, sdpa); flash_attention_2 packs varlen
    lr: float = 1e-5
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.999)
    max_grad_norm: float = 1.0
    max_prompt_tokens: int = 512
    calib_prompts: int = 8
    save_every: int = 0  # 0 = only the final step
    ppo_epochs: int = 1  # passes over each rollout batch
    mini_batches: int = 1  # optimizer updates per pass
    backend: str = "hf"  # rollouts: hf (transformers generate) | vllm (offline engine, weights synced each step)
    vllm: dict = field(default_factory=dict)  # extra vllm.LLM arguments, e.g. gpu_memory_utilization
    weight_sync_bucket_mb: float = 512.0  # vllm: weights reach the engine in buckets of at most this (engine dtype)
    parallel: str = "none"  # none | ddp | fsdp (under torchrun)
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    bf16: bool = False  # bf16 compute (FSDP2 mixed precision / autocast on CUDA); fp32 master weights
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)


# ---- config: defaults < YAML < overrides -----------------------------------------------------

def _merge(obj, values: dict, where: str):
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r}, expected one of {', '.join(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            value = _merge(current, value, f"{where}.{key}")
        elif isinstance(current, dict) and not isinstance(value, dict):
            raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
        elif isinstance(current, tuple):
            value = tuple(value)
        elif isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: expected true/false, got {value!r}")
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            if isinstance(current, float) and isinstance(value, str):
                value = _float_or_str(value)  # YAML 1.1 reads "1e-3" as a string
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
            value = type(current)(value) if isinstance(current, float) else value
        elif isinstance(current, str) and not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
        kwargs[key] = value
    try:
        return dataclasses.replace(obj, **kwargs)
    except ValueError as e:  # __post_init__ checks (MaskConfig)
        raise ConfigError(f"{where}: {e}") from None


def _float_or_str(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    import yaml

    cfg = TrainConfig()
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys")
        cfg = _merge(cfg, raw, path)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value")
        nested: dict = {}
        node = nested
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(text)
        cfg = _merge(cfg, nested, f"override {item!r}")
    if not cfg.model:
        raise ConfigError(f"{path or 'config'}: field 'model' is required (a HF model directory)")
    given = {item.partition("=")[0]: item for item in overrides}

    def where(field_: str) -> str:
        """Blame the override that set a field (or a field inside it), else the file."""
        for key, item in given.items():
            if field_ == key or field_.startswith(key + ".") or key.startswith(field_ + "."):
                return f"override {item!r}"
        return path or "config"

    _validate(cfg, where)
    return cfg


def check_model_dir(cfg: TrainConfig) -> None:
    """The starting checkpoint exists (unless it is a hub id, `org/name`); the CLI checks this for
    `--dry-run` too, so a typo fails before anything loads."""
    name = cfg.model
    if looks_local(name) and not (Path(name).expanduser() / "config.json").is_file():
        raise ConfigError(f"model={name}: not a model directory (no config.json there); build the tiny one with "
                         "`longact model build-tiny --out DIR` or give a HF checkpoint directory")


def _validate(cfg: TrainConfig, where) -> None:
    """Values in range and combinations that make sense; `where(field)` names the file or the
    override that set the field, so `--dry-run` finds every mistake the run would."""
    for name, value, low in (("lr", cfg.lr, 0.0), ("max_grad_norm", cfg.max_grad_norm, 0.0),
                             ("weight_sync_bucket_mb", cfg.weight_sync_bucket_mb, 0.0),
                             ("sampling.temperature", cfg.sampling.temperature, 0.0)):
        if not value > low:
            raise ConfigError(f"{where(name)}: {name} must be > {low:g}, got {value}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"{where('weight_decay')}: weight_decay must be >= 0, got {cfg.weight_decay}")
    if not 0 < cfg.sampling.top_p <= 1:
        raise ConfigError(f"{where('sampling.top_p')}: sampling.top_p must be in (0, 1], got {cfg.sampling.top_p}")
    for name in ("sampling.max_new_tokens", "max_prompt_tokens"):
        value = cfg.sampling.max_new_tokens if name.startswith("sampling") else cfg.max_prompt_tokens
        if value < 1:
            raise ConfigError(f"{where(name)}: {name} must be >= 1, got {value}")
    for name in ("steps", "prompts_per_step", "group_size", "micro_batch", "ppo_epochs", "mini_batches", "calib_prompts"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{where(name)}: {name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.attn_implementation and not (cfg.attn_implementation == "sdpa" or cfg.attn_implementation.startswith("flash_attention")):
        raise ConfigError(f"{where('attn_implementation')}: attn_implementation: got {cfg.attn_implementation!r}; packed "
                         "micro-batches need sdpa (the default) or flash_attention_2/3, which attend within each row")
    if cfg.max_tokens_per_micro_batch < 0:
        raise ConfigError(f"{where('max_tokens_per_micro_batch')}: max_tokens_per_micro_batch must be >= 0 (0 = no limit), "
                         f"got {cfg.max_tokens_per_micro_batch}")
    if cfg.group_size < 2 and cfg.algo.advantage == "grpo":
        raise ConfigError(f"{where('group_size')}: group_size must be >= 2 for group-normalised advantages")
    if cfg.mini_batches > cfg.prompts_per_step * cfg.group_size:
        raise ConfigError(f"{where('mini_batches')}: mini_batches ({cfg.mini_batches}) exceeds the step's "
                         f"{cfg.prompts_per_step * cfg.group_size} completions")
    for name, value, allowed in (("backend", cfg.backend, ("hf", "vllm")), ("parallel", cfg.parallel, parallel.MODES),
                                 ("device", cfg.device, ("auto", "cpu", "cuda"))):
        if value not in allowed:
            raise ConfigError(f"{where(name)}: {name}: got {value!r}, expected one of {', '.join(allowed)}")
    if cfg.algo.dual_clip_c and cfg.algo.dual_clip_c <= 1.0:
        raise ConfigError(f"{where('algo.dual_clip_c')}: algo.dual_clip_c must be > 1 (or 0 = off), got {cfg.algo.dual_clip_c}")
    for name in ("log_ratio_clamp", "kl_clamp"):
        if getattr(cfg.algo, name) < 0:
            raise ConfigError(f"{where('algo.' + name)}: algo.{name} must be >= 0 (0 = off), got {getattr(cfg.algo, name)}")
    for table, name, field_ in ((L.ADVANTAGES, cfg.algo.advantage, "algo.advantage"),
                                (L.POLICY_LOSSES, cfg.algo.policy_loss, "algo.policy_loss"),
                                (L.AGGREGATIONS, cfg.algo.aggregation, "algo.aggregation")):
        L.lookup(table, name, f"{where(field_)}: {field_}")
    # the losses take `**_`: without this check a misspelled key would train with the default
    cfg.algo.loss_kwargs = L.check_loss_kwargs(cfg.algo.policy_loss, cfg.algo.loss_kwargs, f"{where('algo.loss_kwargs')}: algo.loss_kwargs")
    if len(cfg.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in cfg.betas):
        raise ConfigError(f"{where('betas')}: betas must be two numbers in [0, 1) (AdamW's), got {list(cfg.betas)}")
    if cfg.data.source not in SOURCES:
        raise ConfigError(f"{where('data.source')}: data.source: unknown {cfg.data.source!r}, expected one of {', '.join(SOURCES)}")
    check_vllm_args(cfg, where)


# What the vLLM rollout passes the engine itself (training/rollout.py VLLMRollout).
VLLM_SET_BY_TRAINER = {"model": "model (or the checkpoint resumed from)", "seed": "seed"}


def check_vllm_args(cfg: TrainConfig, where) -> None:
    """`vllm` holds vllm.LLM keyword arguments: only read with backend=vllm, never ones the trainer
    sets, and (where vLLM is installed) only names its engine knows. vLLM itself would refuse an
    unknown one too, but only once the policy has loaded."""
    if not cfg.vllm:
        return
    at = where("vllm")
    if cfg.backend != "vllm":
        raise ConfigError(f"{at}: vllm: engine arguments {sorted(cfg.vllm)} are read only with backend=vllm "
                          f"(backend is {cfg.backend!r}); set backend=vllm, or vllm={{}}")
    for key, owner in VLLM_SET_BY_TRAINER.items():
        if key in cfg.vllm:
            raise ConfigError(f"{at}: vllm.{key}: the trainer sets it from {owner}")
    known = vllm_engine_arguments()
    unknown = sorted(set(cfg.vllm) - known) if known else []
    if unknown:
        import difflib

        close = {k: difflib.get_close_matches(k, sorted(known), n=1) for k in unknown}
        hints = "; ".join(f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for k, c in close.items())
        raise ConfigError(f"{at}: vllm: unknown engine argument(s) {hints}: vllm.LLM takes the fields of "
                          "vllm.engine.arg_utils.EngineArgs")


def vllm_engine_arguments() -> set[str]:
    """The keyword arguments vllm.LLM accepts (its own and EngineArgs' fields); empty where vLLM
    is not installed (the rollout then says so when it starts)."""
    import inspect

    try:
        from vllm import LLM
        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return set()
    own = {p.name for p in inspect.signature(LLM.__init__).parameters.values()
           if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
    return own | {f.name for f in dataclasses.fields(EngineArgs)}
