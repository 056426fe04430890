"""The typed config of one evaluation run, nested by concern, and the CLI flags declared with it.

    EvalConfig(model="models/tiny-qwen3", max_model_len=2048,
               run=RunConfig(tasks=["tiny"]), client=ClientConfig(concurrency=4))

* `EvalConfig`: what is evaluated (model, tokenizer, window) and how it is reached (`backend`).
* `ServerConfig` (harness/backends/serve.py): how the harness starts vLLM when no base URL is given.
* `ClientConfig`: how requests reach the model (URL, key, concurrency, retries, timeouts).
* `RunConfig`: what is run (tasks, mode, samples, decoding overrides, task metadata, seed) and
  where results go.

Each field that is a `longact eval` flag declares it in its metadata (`flag`, `help`, `parse`),
so the parser is generated from this file and `from_args` fills the config without copying
flags one by one. The resolved config is written to `<run_dir>/config.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from harness.backends.serve import ServerConfig
from harness.errors import UserError
from harness.flags import flag
from harness.run import backends
from harness.run.shard import Shard


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _json_obj(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r} ({e.msg})") from e
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return obj


def _shard(value: str) -> str:
    try:
        return str(Shard.parse(value))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _limit(value: str) -> float | int:
    x = float(value)
    return int(x) if x >= 1 else x


@dataclass
class ClientConfig:
    """How requests reach the model."""

    base_url: list[str] = flag("--base-url", "running server(s) to use instead of starting one: comma-separated or "
                               "repeated; every server must serve the same weights, each request goes to the "
                               "one with the fewest in flight", [], parse=_csv, action="extend", metavar="URL[,URL...]")
    """Servers of a run (several: harness/backends/pool.py); a string is read as comma-separated."""
    api_key: str | None = flag("--api-key", "API key for the server (set on a started server; sent by the client)")
    concurrency: int = flag("--concurrency", "requests in flight per server (default: %(default)s)", 8, parse=int)
    max_retries: int = flag("--max-retries", "retries per failed request (default: %(default)s)", 4, parse=int)
    request_timeout_s: float = flag("--request-timeout", "seconds to wait for one answer before it counts as failed "
                                    "and is retried (default: %(default)s)", 600.0, parse=float)
    per_request_seed: bool = flag(
        "--per-request-seed", "seed each sampled request from --seed (reproducible sampling; GPU vLLM only: "
        "the CPU build crashes on per-request seeds)", False, action="store_true")

    def __post_init__(self):
        if self.base_url is None:
            self.base_url = []
        elif isinstance(self.base_url, str):
            self.base_url = _csv(self.base_url)


@dataclass
class RunConfig:
    """What is run and where its results go."""

    tasks: list[str] = flag("--tasks", "comma-separated task or group names (default: tiny)", ["tiny"], parse=_csv)
    limit: float | None = flag("--limit", "items per task (or a fraction < 1); for smoke tests", parse=_limit)
    shard: str | None = flag("--shard", "evaluate shard K of N: a fixed subset of every task's items, balanced in "
                             "prompt tokens; `longact merge` joins the N runs into one", parse=_shard, metavar="K/N")
    """`K/N` (harness/run/shard.py); None: every item."""
    mode: str = flag("--mode", "official: benchmarks as published; reasoning: chat with thinking enabled, no prefill, "
                     "larger budget, thinking removed before scoring (default: %(default)s)", "official",
                     choices=["official", "reasoning"])
    """`official` or `reasoning` (harness/run/modes.py)."""
    samples_per_item: int = flag("--samples-per-item", "sample every item K times; metrics become mean@K, plus pass@K "
                                 "for 0/100 metrics", 1, parse=int, metavar="K")
    chat_template: str = flag("--chat-template", "task: each task's declared endpoint (default); off: send prompts "
                              "without the chat template (base models); on: send every prompt as a chat turn",
                              "task", choices=["task", "on", "off"])
    reasoning_budget: int | None = flag("--reasoning-budget", "output tokens in reasoning mode (default: per task, "
                                        "8192 unless the task says)", parse=int, metavar="TOKENS")
    gen_kwargs: dict = flag("--gen-kwargs", 'JSON overrides, e.g. \'{"temperature": 0.6}\'', {}, parse=_json_obj)
    task_metadata: dict = flag("--metadata", "JSON passed to task loaders (e.g. data paths)", {}, parse=_json_obj)
    seed: int = flag("--seed", "seed of python/numpy/torch, few-shot order and per-request sampling "
                     "(default: %(default)s)", 1234, parse=int)
    output_dir: str = flag("--output-dir", "where run directories go (default: %(default)s)", "results")
    run_id: str | None = flag("--run-id", "write into this run directory (default: a new unique id)")
    use_cache: bool = flag("--no-cache", "do not read or write the request cache", True, action="store_false")
    progress: bool = flag("--quiet", "no progress bars", True, action="store_false")
    command: list[str] = field(default_factory=list)
    """argv of the run, for reproduction."""


@dataclass
class EvalConfig:
    """Everything `longact eval` needs; written to `<run_dir>/config.json`."""

    model: str | None = flag("--model", "checkpoint directory (or hub id where the network allows)")
    tokenizer: str | None = flag("--tokenizer", "tokenizer for prompt fitting (default: the model's)")
    max_model_len: int | None = flag("--max-model-len", "window: prompt + generation budget (default: the server's)",
                                     parse=int)
    backend: str = flag("--backend", backends.flag_help(), "server", choices=list(backends.BACKENDS))
    """A name in harness/run/backends.py's registry."""
    serve: ServerConfig = field(default_factory=ServerConfig)
    """How started servers are launched (their model, window and key are the run's: `launch_config`)."""
    client: ClientConfig = field(default_factory=ClientConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def config_from_dict(data: dict) -> EvalConfig:
    """The config a run's config.json holds (fields this version does not know are refused)."""
    try:
        sections = {name: cls(**(data.get(name) or {})) for name, cls in SECTIONS.items()}
        return EvalConfig(**{k: v for k, v in data.items() if k not in SECTIONS}, **sections)
    except TypeError as e:
        raise UserError(f"config.json: {e}; written by another version of the harness?") from e


def _flag_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "flag" in f.metadata]


SECTIONS = {"serve": ServerConfig, "client": ClientConfig, "run": RunConfig}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add every flag the config declares, grouped by section in `--help`."""
    groups = {None: parser.add_argument_group("model"), **{k: parser.add_argument_group(k) for k in SECTIONS}}
    for section, cls in ((None, EvalConfig), *SECTIONS.items()):
        for f in _flag_fields(cls):
            kw = dict(f.metadata["argparse"])
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if kw.get("action") in (None, "append", "extend"):
                kw["type"] = f.metadata["parse"] or str
                kw.setdefault("metavar", f.metadata["flag"].lstrip("-").upper().replace("-", "_"))
            groups[section].add_argument(f.metadata["flag"], dest=_dest(section, f), default=argparse.SUPPRESS,
                                         help=f.metadata["help"] % {"default": default}, **kw)


def _dest(section: str | None, f: dataclasses.Field) -> str:
    return f"cfg__{section or 'top'}__{f.name}"


def from_args(args: argparse.Namespace) -> EvalConfig:
    """The config the parsed flags describe; flags not given keep the dataclass defaults."""
    given = {k: v for k, v in vars(args).items() if k.startswith("cfg__")}
    sections = {}
    for name, cls in SECTIONS.items():
        sections[name] = cls(**{f.name: given[_dest(name, f)] for f in _flag_fields(cls) if _dest(name, f) in given})
    fields = {f.name: given[_dest(None, f)] for f in _flag_fields(EvalConfig) if _dest(None, f) in given}
    return EvalConfig(**fields, **sections)
