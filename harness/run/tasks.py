"""Resolving the tasks of a run and identifying them: lm-eval's TaskManager over tasks/, name
and version checks, and the hashes that make a task's config and data comparable across runs."""

from __future__ import annotations

import difflib
import functools
import inspect
from pathlib import Path

from harness.errors import UserError
from harness.records import provenance
from harness.run import lm_eval_internals

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"


def task_manager(metadata: dict | None = None):
    """lm-eval's TaskManager over tasks/ with `metadata`. The scan of tasks/ is done once per
    process (a sweep runs many evaluations): each manager shares that index, which maps names to
    YAML files and is only read (every load reads the YAML files again), and has its own metadata."""
    return lm_eval_internals.manager_with_metadata(_scanned(), metadata or {})


@functools.lru_cache(maxsize=1)
def _scanned():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={})


class TaskCatalog:
    """The tasks of tasks/, indexed once per run: names are checked before anything expensive
    starts, and the same index loads the tasks once the runtime metadata (the evaluated
    tokenizer and window, which may come from the server) is known."""

    def __init__(self):
        self.manager = task_manager()

    def check_names(self, names: list[str]) -> None:
        check_task_names(self.manager, names)

    def leaves(self, names: list[str]) -> list[str]:
        """The tasks that `names` (tasks or groups) stand for, from the index (nothing loaded)."""
        out: list[str] = []
        for name in names:
            entry = self.manager.task_index[name]
            children = (entry.cfg or {}).get("task")
            if isinstance(children, list):
                out += self.leaves([c for c in children if isinstance(c, str)])
            elif name not in out:
                out.append(name)
        return out

    def metadata(self, name: str) -> dict:
        """A task's YAML metadata as indexed (functions unresolved)."""
        return (self.manager.task_index[name].cfg or {}).get("metadata") or {}

    def loaders(self, names: list[str]):
        """(custom_dataset function, metadata keys its YAML fixes) of every leaf task of `names`,
        resolved from the index without building any dataset."""
        import importlib

        out = []
        for name in self.leaves(names):
            cfg = self.manager.task_index[name].cfg or {}
            ref = cfg.get("custom_dataset")
            if not isinstance(ref, str):
                continue
            path, _, func = ref.rpartition(".")
            module = ".".join(Path(path).resolve().relative_to(TASKS_DIR.parent).parts)
            out.append((getattr(importlib.import_module(module), func), tuple((cfg.get("metadata") or {}).keys())))
        return out

    def load(self, names: list[str], metadata: dict) -> dict:
        """lm-eval's `TaskManager.load` with `metadata` merged into every task's and group's
        (lm-eval 0.4 fixes the metadata when the manager is built: a manager over the same scan
        takes it; tests/test_tasks.py::test_catalog_loads_with_runtime_metadata guards this)."""
        self.manager = task_manager(metadata)
        loaded = self.manager.load(names)
        check_task_versions(loaded["tasks"])
        return loaded


def check_task_versions(tasks: dict) -> None:
    """Results are compared by task version: a task without one cannot be evaluated."""
    for name, task in tasks.items():
        if (task.config.metadata or {}).get("version") in (None, ""):
            raise UserError(f"task {name} declares no metadata.version in its YAML; results could not be "
                            "told apart from a later edit of the task. Add `metadata: {version: 1.0}`")


def check_task_names(tm, names: list[str]) -> None:
    known = set(tm.all_tasks)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UserError(f"unknown task '{name}'.{hint} `longact tasks` lists them all.")


def _callable_sources(cfg) -> list[str]:
    """Source files behind a task's `!function` hooks, so code changes change the config hash."""
    files = set()
    for value in vars(cfg).values():
        if callable(value):
            try:
                files.add(inspect.getsourcefile(value))
            except TypeError:
                pass
    return sorted(f for f in files if f)


# Run-specific metadata the harness injects; excluded from the config hash (recorded elsewhere).
RUNTIME_METADATA = ("tokenizer", "max_model_len", "mode")


def _stable(obj):
    """JSON-able view of a config: callables become module.qualname (no memory addresses)."""
    if callable(obj):
        return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    if isinstance(obj, dict):
        return {str(k): _stable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    return obj


def task_config_hash(task) -> str:
    cfg = task.config
    files = _callable_sources(cfg)
    metadata = {k: v for k, v in (cfg.metadata or {}).items() if k not in RUNTIME_METADATA}
    files += [inspect.getsourcefile(v) for v in metadata.values() if callable(v)]
    sources = {Path(f).name: Path(f).read_text(encoding="utf-8", errors="replace") for f in sorted(set(files)) if f}
    config = _stable({**cfg.to_dict(), "metadata": metadata})
    return provenance.json_hash({"config": config, "sources": sources})


def dataset_fingerprint(task) -> str:
    """Hash of the documents as evaluated (after the task's own processing and truncation)."""
    return provenance.json_hash([doc for doc in task.eval_docs])
