"""The result record: `results/<run_id>/run.json`, one per evaluation run.

Every field has a docstring. Records round-trip through `RunRecord.from_dict(rec.to_dict())`;
unknown keys and wrong types are rejected with the path of the offending field, so a file written
by another version of the harness fails loudly instead of being half-read. Identity lives in the
record (model hash, task versions, config hashes, data fingerprints), never in file names.
Per-sample details are in `results/<run_id>/samples_<task>.jsonl` (see `SampleRecord`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class SchemaError(ValueError):
    """A result file does not match the schema; the message names the field path."""


@dataclass
class Metric:
    value: float
    """Score on the scale the task reports (percent for the three benchmarks)."""
    stderr: float | None = None
    """Standard error of the mean over samples (None when lm-eval could not compute one)."""
    n: int = 0
    """Number of samples the value is computed over."""


@dataclass
class ModelInfo:
    path: str
    """Model path or name as given by the user (or as the server reports it)."""
    weights_sha256: str | None = None
    """SHA-256 over the weight files and model configs at `path` on this machine (sorted by name,
    name + bytes; `provenance.weights_sha256`); None when not local. With a server the harness did
    not start, what those files hold; `served_fingerprint` is what the server served."""
    tokenizer_sha256: str | None = None
    """The tokenizer's identity: SHA-256 of what it does (its text-to-ids definition, special-token
    roles and chat template; `tasks.tokens.tokenizer_identity`), not of its files' bytes."""
    tokenizer: str | None = None
    """Where the tokenizer used for fitting prompts was loaded from."""
    served_fingerprint: str | None = None
    """What was served: hash of the server's greedy answer (text and log-probs) to a fixed identity
    probe, asked of every server before any request (None: the in-process backend, or a server
    that gives no log-probs). It proves a request cache's answers came from these weights
    (harness/run/identity.py), and keys the cache when the weights' files cannot be read here."""


@dataclass
class ServerRecord:
    """One of several servers a run sent requests to (`--base-url A,B,...`)."""

    url: str
    model: str
    """The name the server serves the model under."""
    fingerprint: str | None = None
    """Its answer to the identity probe (equal on every server of a run, or the run is refused)."""
    server_version: str | None = None
    sent: int = 0
    """Requests sent to it (attempts, retries included)."""
    answered: int = 0
    """Answers it gave."""
    taken_out: str | None = None
    """Why the run stopped sending to it (it stopped answering); None if it served to the end."""


@dataclass
class ServingInfo:
    backend: str
    """`server` (OpenAI-compatible HTTP), `hf` (lm-eval's in-process transformers backend) or
    `imported` (scores rescored from an official prediction file, see `imported_from`)."""
    managed: bool = False
    """True when the harness started and stopped the server itself."""
    base_url: str | None = None
    """Where requests went (several servers: their URLs, comma-separated)."""
    server_version: str | None = None
    """vLLM version reported by the server's /version endpoint."""
    max_model_len: int = 0
    """Window used for fitting prompts (prompt + generation budget <= this)."""
    dtype: str | None = None
    tensor_parallel_size: int | None = None
    data_parallel_size: int | None = None
    """Engine replicas behind each started server's endpoint (vLLM data parallelism)."""
    extra_args: list[str] = field(default_factory=list)
    """Flags the harness added to the vLLM command of the servers it started (`--server-args`,
    $LONGACT_SERVER_ARGS); empty for a server it did not start."""
    startup_s: float | None = None
    """Seconds from launching the server to a healthy /health (managed servers only)."""
    concurrency: int = 1
    """Requests in flight at once."""
    weights_swap_s: float | None = None
    """Seconds to load this checkpoint into an engine already serving another (one engine for many
    checkpoints, `startup_s` is then the engine's); None when the engine started with it."""
    identity_probe_s: float | None = None
    """Seconds the identity probe took, every server together (what proving the served weights
    costs the run); None when nothing was probed (in-process backend)."""
    servers: list[ServerRecord] = field(default_factory=list)
    """With several servers (`--base-url A,B`): each one, and how many requests it answered;
    `base_url` then lists them comma-separated and `concurrency` is per server."""


@dataclass
class TaskResult:
    version: str | None
    """The task's `metadata.version`; results of different versions are never compared silently."""
    config_hash: str
    """SHA-256 of the resolved task config (prompt, generation kwargs, metrics, ...)."""
    dataset_fingerprint: str
    """SHA-256 of the evaluated documents (after any processing), so data drift is visible."""
    endpoint: str
    """`chat` or `completion`: how prompts were sent."""
    generation_kwargs: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 0
    n_truncated: int = 0
    """Prompts the harness shortened to fit the window."""
    n_errors: int = 0
    """Requests that failed after retries (scored as wrong; a rerun retries them)."""
    n_cached: int = 0
    """Answers read from the request cache instead of being sent (resumed runs)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    metrics: dict[str, Metric] = field(default_factory=dict)
    breakdown: dict[str, dict[str, dict[str, Metric]]] = field(default_factory=dict)
    """Metrics per value of a document field the task declares (field -> value -> metric),
    e.g. LongBench v2 difficulty/length/domain."""
    samples_file: str | None = None
    """File name of this task's per-sample log, relative to the run directory."""
    n_thinking_unclosed: int | None = None
    """Reasoning mode: items with an output whose thinking never closed (scored as wrong)."""
    data_sources: list[dict[str, Any]] = field(default_factory=list)
    """Where generated documents came from (RULER: haystack, word lists, QA files, template),
    as the task's loader records them on each document (`_sources`); distinct values."""


@dataclass
class CodeInfo:
    harness_version: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    """True when the working tree had uncommitted changes."""


@dataclass
class ShardInfo:
    """What a `--shard K/N` run evaluated (harness/run/shard.py), for `longact merge`."""

    index: int
    """K, from 1."""
    count: int
    """N."""
    items: dict[str, list[int]]
    """Task -> the doc_ids this shard evaluated."""
    of: dict[str, int]
    """Task -> the items of the whole run (every shard)."""
    prompt_tokens: int
    """This shard's prompt tokens, estimated as the shards were balanced."""

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class RunRecord:
    run_id: str
    """Unique id (UTC time + random suffix); also the run directory's name."""
    status: str
    """`running`, `complete`, `incomplete` (some requests failed; rerun to resume), `failed` (an
    error stopped the run; `errors` says which) or `interrupted` (Ctrl-C / SIGTERM)."""
    model: ModelInfo
    serving: ServingInfo
    code: CodeInfo
    schema_version: int = SCHEMA_VERSION
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    groups: dict[str, dict[str, Metric]] = field(default_factory=dict)
    """Aggregate metrics of task groups (e.g. `tiny`)."""
    group_members: dict[str, list[str]] = field(default_factory=dict)
    """Tasks of each group in this run, as lm-eval resolved the group (older runs: empty)."""
    imported_from: str | None = None
    """For imported runs: the official prediction file the scores were recomputed from."""
    mode: str = "official"
    """`official` (benchmarks as published) or `reasoning` (thinking removed before scoring)."""
    samples_per_item: int = 1
    """Outputs per item; with k > 1 metrics are mean@k over items (and `<metric>_pass@k`)."""
    chat_template: str = "task"
    """`task` (each task's declared endpoint), `off` (prompts sent without the chat template) or
    `on` (every prompt as a chat turn); the endpoint each task used is in `tasks.*.endpoint`."""
    group_breakdown: dict[str, dict[str, dict[str, dict[str, Metric]]]] = field(default_factory=dict)
    """Per group, the unweighted mean over its tasks of each breakdown value every task has
    (group -> field -> value -> metric), e.g. RULER's mean over 13 tasks per length."""
    seeds: dict[str, int] = field(default_factory=dict)
    limit: float | None = None
    """`--limit` (None: full tasks). Limited runs are flagged in tables."""
    shard: ShardInfo | None = None
    """A `--shard K/N` run's selection; None: every item was evaluated here."""
    merged_from: list[dict[str, Any]] = field(default_factory=list)
    """A `longact merge` run: each shard's {"run_id", "path", "shard", "started_at", "wall_time_s"}."""
    truncation: dict[str, Any] = field(default_factory=dict)
    """Policy used to fit prompts (`middle`, window, budget source)."""
    requests: dict[str, int] = field(default_factory=dict)
    """Counts: total (answers the run has, fresh or cached), sent (HTTP attempts), answered (fresh
    answers received), cached, failed. A stopped run counts what happened up to the stop."""
    errors: list[str] = field(default_factory=list)
    """Human-readable errors (first few per task)."""
    packages: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str | None = None
    wall_time_s: float | None = None
    """Seconds from the start to the end, or to the stop of a run that was stopped."""
    command: list[str] = field(default_factory=list)
    """argv of the run, for reproduction."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        if isinstance(data, dict) and "kind" in data:  # written before 0.1.0 dropped the unused field
            data = {k: v for k, v in data.items() if k != "kind"}
        return _build(cls, data, "run")


@dataclass
class SampleRecord:
    """One line of `samples_<task>.jsonl`."""

    doc_id: int
    prompt_hash: str | None
    """Hash of the prompt as the server tokenizes it (chat template applied); None when the
    request never reached the backend (imported runs)."""
    prompt_tokens: int | None
    truncated: bool | None
    response: str
    """Raw model output (before any filter)."""
    filtered: Any
    """Output after the task's filters, as scored."""
    target: Any
    metrics: dict[str, Any]
    error: str | None = None
    from_cache: bool = False
    completion_tokens: int | None = None
    finish_reason: str | None = None
    first_response: str | None = None
    """First-pass output of two-pass tasks (LongBench v2 CoT reasoning)."""
    responses: list[str] | None = None
    """All k raw outputs when items are sampled k times (`response` is the first)."""
    doc: dict[str, Any] | None = None
    """The document minus long fields (context) for readability."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SampleRecord:
        return _build(cls, data, "sample")


def _check(tp, value, where: str):
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(a, value, where)
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(errors[0] if errors else f"{where}: unexpected null")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
        _, vt = typing.get_args(tp)
        return {k: _check(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list, got {type(value).__name__}")
        (it,) = typing.get_args(tp)
        return [_check(it, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise SchemaError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {unknown} for {cls.__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _check(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"{where}: missing required field '{f.name}' of {cls.__name__}")
    return cls(**kwargs)
