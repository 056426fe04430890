"""Everything about an eval command that can be wrong without a server, checked before one starts.

A server start costs one to several minutes (more on a GPU), so flags, paths, task names, task
metadata and data files are checked first; each mistake is one line that says what to do.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

from harness.errors import UserError
from harness.records.provenance import WEIGHT_SUFFIXES
from harness.run import backends
from harness.run.config import EvalConfig
from harness.run.modes import MODES
from harness.run.shard import Shard
from tasks.data_io import looks_local

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Metadata the harness itself gives every task (recorded elsewhere in run.json).
RUNTIME_KEYS = ("tokenizer", "max_model_len", "mode")


def _positive(name: str, value, allow_none: bool = True, minimum: float = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise UserError(f"{name} must be >= {minimum} (got {value!r})")


def check_config(cfg: EvalConfig) -> None:
    """Flags: values in range, combinations that make sense, paths that exist."""
    backend = backends.get(cfg.backend)
    if not backend.serves and not cfg.model:
        raise UserError(f"--backend {backend.name} needs --model PATH")
    if not cfg.model and not cfg.client.base_url:
        raise UserError("pass --model PATH (the harness serves it) or --base-url URL (a running server)")
    if cfg.model and cfg.client.base_url:
        raise UserError("--model and --base-url name two models: with --base-url the server's model is evaluated "
                        "(and recorded); give its tokenizer with --tokenizer PATH and drop --model")
    if cfg.run.mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)} (got {cfg.run.mode!r})")
    if cfg.run.chat_template not in ("task", "on", "off"):
        raise UserError(f"--chat-template must be task, on or off (got {cfg.run.chat_template!r})")
    if cfg.run.mode == "reasoning" and cfg.run.chat_template == "off":
        raise UserError("--mode reasoning needs the chat template (thinking is switched on in it); drop --chat-template off")
    if not cfg.run.tasks:
        raise UserError("--tasks is empty; name tasks or groups (`longact tasks` lists them)")
    _positive("--max-model-len", cfg.max_model_len)
    _positive("--samples-per-item", cfg.run.samples_per_item, allow_none=False)
    _positive("--reasoning-budget", cfg.run.reasoning_budget)
    _positive("--concurrency", cfg.client.concurrency, allow_none=False)
    _positive("--max-retries", cfg.client.max_retries, allow_none=False, minimum=0)
    _positive("--tensor-parallel-size", cfg.serve.tensor_parallel_size, allow_none=False)
    _positive("--data-parallel-size", cfg.serve.data_parallel_size, allow_none=False)
    _positive("--servers", cfg.serve.servers, allow_none=False)
    if cfg.serve.servers > 1 and (cfg.client.base_url or not backend.serves):
        raise UserError(f"--servers starts vLLM servers: drop --base-url (already several URLs are one run) / "
                        f"--backend {backend.name}")
    if cfg.serve.servers > 1 and cfg.serve.port is not None:
        raise UserError("--servers N picks a free port for each server; drop --port")
    for name, value in (("--request-timeout", cfg.client.request_timeout_s), ("--startup-timeout", cfg.serve.startup_timeout_s),
                        ("--limit", cfg.run.limit)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise UserError(f"{name} must be > 0 (got {value!r})")
    if cfg.run.shard is not None:
        Shard.parse(cfg.run.shard)
    if cfg.serve.port is not None and not 0 < cfg.serve.port < 65536:
        raise UserError(f"--port must be 1..65535 (got {cfg.serve.port})")
    if cfg.run.run_id is not None and not RUN_ID.match(cfg.run.run_id):
        raise UserError(f"--run-id {cfg.run.run_id!r}: use letters, digits, '.', '_' and '-' (no path separators, "
                        "not starting with '.'); it names a directory inside --output-dir")
    if cfg.model:
        check_model_path(cfg.model)
    if cfg.tokenizer and looks_local(cfg.tokenizer) and not Path(cfg.tokenizer).exists():
        raise UserError(f"--tokenizer {cfg.tokenizer} does not exist")
    if cfg.tokenizer and not looks_local(cfg.tokenizer):
        check_hub_id(cfg.tokenizer, "--tokenizer")


HUB_PROBE_TIMEOUT_S = 3.0


def check_hub_id(name: str, flag: str = "--model") -> None:
    """`org/name` that is not on disk: a hub id, unless the hub is out of reach. Offline, transformers
    would retry for most of a minute before failing; instead say at once what each reading needs.
    A model already in the local hub cache is fine either way."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
        endpoint = constants.ENDPOINT
    except Exception:  # noqa: BLE001 - no usable hub client: let the loaders report
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set" if offline else None
    if why is None:
        import requests

        try:
            requests.head(f"{endpoint}/api/models/{name}", timeout=HUB_PROBE_TIMEOUT_S, allow_redirects=False)
        except requests.RequestException as e:
            why = f"the hub ({endpoint}) cannot be reached: {type(e).__name__}"
    if why:
        raise UserError(
            f"{flag} {name}: no such local path, and as a Hugging Face hub id it cannot be fetched ({why}). "
            f"If you meant a local directory, fix the path (`longact model build-tiny` builds the default at "
            f"models/tiny-qwen3); if you meant a hub model, download it where the network allows "
            f"(`hf download {name} --local-dir DIR`) and pass --model DIR")


def check_model_path(model: str) -> None:
    if not looks_local(model):
        check_hub_id(model)
        return  # a hub id the hub can serve; resolved by vLLM / transformers
    p = Path(model).expanduser()
    if not p.exists():
        raise UserError(f"model path {model} does not exist. Build the default with "
                        "`longact model build-tiny`, or pass a directory holding config.json and weights.")
    if not (p / "config.json").is_file():
        raise UserError(f"{model} is not a model directory: no config.json inside")
    if not any(f.suffix in WEIGHT_SUFFIXES for f in p.iterdir()):
        raise UserError(f"{model} has a config.json but no weights ({', '.join(WEIGHT_SUFFIXES)} files)")


def check_tokenizer_matches_model(tokenizer, model: str | None) -> None:
    """A --tokenizer other than the model's own must be the same tokenizer (one identity:
    `tasks.tokens.tokenizer_identity`; checked locally, no server): it must cut, count and render
    prompts exactly as the model's own, which the server uses."""
    if not model or not Path(model).is_dir():
        return
    from tasks.tokens import load_tokenizer, tokenizer_identity

    try:
        own = load_tokenizer(str(Path(model)))
    except UserError:
        return  # a model directory without a tokenizer: --tokenizer is the only one
    if own is not tokenizer and tokenizer_identity(own) != tokenizer_identity(tokenizer):
        raise UserError(f"--tokenizer does not tokenize like {model}'s own tokenizer (their vocabularies, special "
                        "tokens or chat templates differ); prompts would be fitted with wrong budgets. Drop --tokenizer "
                        "or fix it")


def check_chat_template(catalog, names: list[str], chat_template: str) -> None:
    """`--chat-template off` cannot send a system prompt or a one-shot exchange (a task's
    `chat_prefix`, e.g. InfiniteBench's), so those tasks refuse it rather than drop them."""
    if chat_template != "off":
        return
    bound = [n for n in catalog.leaves(names) if (catalog.metadata(n) or {}).get("chat_prefix")]
    if bound:
        raise UserError(f"--chat-template off: {', '.join(bound)} send messages before the user turn (a system "
                        "prompt or a one-shot exchange) that a plain completion prompt cannot carry")


def loader_keys(fn) -> set[str]:
    """The metadata keys a task's loader reads: its keyword parameters (`**_` swallows the rest)."""
    return {name for name, p in inspect.signature(fn).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_metadata(catalog, names: list[str], metadata: dict) -> None:
    """Unknown `--metadata` keys are an error naming the keys the requested tasks read; path
    values (`*_path`, `*_dir`) must exist."""
    known = set()
    for fn, fixed in catalog.loaders(names):
        known |= loader_keys(fn) - set(fixed)
    user_keys = set(known) - set(RUNTIME_KEYS)
    unknown = sorted(set(metadata) - user_keys)
    if unknown:
        raise UserError(f"--metadata: unknown key(s) {', '.join(unknown)} for task(s) {', '.join(names)}; "
                        f"they read: {', '.join(sorted(user_keys)) or 'nothing'}")
    for key, value in metadata.items():
        if key.endswith(("_path", "_dir")) and isinstance(value, str) and not Path(value).expanduser().exists():
            raise UserError(f"--metadata {key}: {value} does not exist")
