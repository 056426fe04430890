"""The typed values `run_eval`'s steps hand each other (harness/run/runner.py).

    prepare -> Prepared;  backend.connect -> Launch;  check_target -> Target;
    load_tasks -> Tasks;  evaluate -> Outcome
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.backends.lm import RequestRecord, TaskSpec
    from harness.records.schema import ModelInfo, RunRecord, ServerRecord, ShardInfo
    from harness.run.tasks import TaskCatalog


@dataclass
class Prepared:
    """Step 1: everything known before a server starts."""

    catalog: TaskCatalog
    tokenizer: object
    tokenizer_source: str
    model: ModelInfo
    remote: list[dict]
    """`server_info` of each given --base-url (empty when the harness serves or runs in-process)."""
    run_dir: Path
    record: RunRecord
    """The `running` record written here; the final one is built from it (`build_record`)."""
    lock: object
    """Open handle holding the run directory's lock until the run ends."""


@dataclass
class Launch:
    """Step 2, first half: the servers requests will go to, as started here, swapped into a
    running engine, or given with --base-url; none for the in-process backend."""

    base_urls: list[str] = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)
    """`server_info` of each server."""
    managed: bool = False
    startup_s: float | None = None
    weights_swap_s: float | None = None
    window: int | None = None
    """The in-process backend's window (servers report theirs: `check_target`)."""


@dataclass
class Target:
    """Step 2: where requests go and the window they must fit, checked against every server."""

    window: int
    base_urls: list[str] = field(default_factory=list)
    served_names: list[str] = field(default_factory=list)
    """The model's name on each server (on the in-process backend: the model path)."""
    server_version: str | None = None
    servers: list[ServerRecord] = field(default_factory=list)
    """With several servers: each one and its identity probe answer."""
    fingerprint: str | None = None
    """What is served: the servers' (common) answer to the identity probe; None in-process or
    when the server gives no log-probs."""
    probe_s: float | None = None
    """Seconds the identity probe took, every server together."""


@dataclass
class Tasks:
    """Step 3: the loaded lm-eval tasks (configured for the mode) and each one's request spec."""

    loaded: dict
    specs: dict[str, TaskSpec]
    items: dict[str, list[int]] | None = None
    """With --shard: the doc_ids of each task this shard evaluates (None: all, up to --limit)."""
    shard: ShardInfo | None = None
    """With --shard: the record's `shard` entry."""


@dataclass
class Outcome:
    """Step 4: lm-eval's results and the accounting of every request, fresh or from the cache."""

    results: dict
    records: list[RequestRecord]
    n_sent: int
    failed: list[RequestRecord] = field(default_factory=list)
