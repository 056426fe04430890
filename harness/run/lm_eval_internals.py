"""Every use of lm-eval's private API, in one place.

The harness drives lm-eval through its public API (`TaskManager.load`, `evaluator.evaluate`,
`Task.set_config`, `Task.aggregation()` ...) except for five things lm-eval 0.4.13 offers no
public way to do. Each is one function here, and each private symbol it touches is declared in
`PRIVATE_SYMBOLS` with the shape it is used in; tests/test_lm_eval_internals.py checks every one
against the installed lm-eval, so an upgrade that moves or reshapes one fails there, naming it:

* `aggregate`: lm-eval's own aggregation of per-item metrics into task and group metrics with
  their stderr (`evaluator_utils._process_results(...)._to_eval_results()`, the code `evaluate`
  ends with), so merged shards get exactly the numbers of an unsharded run;
* `filter_names`, `keep_every_output`: a task's filter pipelines (`Task._filters`; with k samples
  per item every output must reach the scorer, not only the first);
* `add_metric`: a metric the task's YAML does not declare (`Task._aggregation_list`,
  `Task._higher_is_better`, the dicts `aggregation()` and `higher_is_better()` return);
* `manager_with_metadata`: a TaskManager over an existing scan of tasks/ with other metadata
  (`TaskManager._factory` holds the metadata; scanning again per run would cost seconds);
* `task_progress`: silencing the bar lm-eval draws per task while building requests (the
  module-level `tqdm` of `lm_eval.api.task`, which nothing disables).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class PrivateSymbol:
    """One private name of lm-eval the harness relies on.

    `path` is the dotted path of the symbol (for an attribute set on instances, the class's
    path then the attribute). `params`, for what is called, are the parameters the harness
    passes: those before `*` by position, in this order from the first, those after it by
    keyword; None for a value that is read or replaced."""

    path: str
    params: tuple[str, ...] | None = None
    on_instances: bool = False  # an attribute each instance gets in __init__, not one of the class


PROCESS_RESULTS = PrivateSymbol("lm_eval.evaluator_utils._process_results", ("eval_results_acc", "groups", "bootstrap_iters"))
TO_EVAL_RESULTS = PrivateSymbol("lm_eval.evaluator_utils.EvalAcc._to_eval_results", ("self", "*", "samples"))
TASK_FILTERS = PrivateSymbol("lm_eval.api.task.ConfigurableTask._filters", on_instances=True)
TASK_AGGREGATIONS = PrivateSymbol("lm_eval.api.task.ConfigurableTask._aggregation_list", on_instances=True)
TASK_HIGHER_IS_BETTER = PrivateSymbol("lm_eval.api.task.ConfigurableTask._higher_is_better", on_instances=True)
TASK_FACTORY = PrivateSymbol("lm_eval.tasks._factory.TaskFactory", ("*", "meta"))
MANAGER_FACTORY = PrivateSymbol("lm_eval.tasks.TaskManager._factory", on_instances=True)
TASK_MODULE_TQDM = PrivateSymbol("lm_eval.api.task.tqdm", ("*", "disable"))

PRIVATE_SYMBOLS = (PROCESS_RESULTS, TO_EVAL_RESULTS, TASK_FILTERS, TASK_AGGREGATIONS, TASK_HIGHER_IS_BETTER,
                   TASK_FACTORY, MANAGER_FACTORY, TASK_MODULE_TQDM)


def resolve(path: str):
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(path)


def aggregate(per_item: dict, groups: dict, bootstrap_iters: int) -> dict:
    """lm-eval's results dict (`results`, `groups`, `group_subtasks`, ...) from per-item metrics.

    `per_item` maps each task name to {"task": Task, "raw_metrics": {(metric, filter): [values in
    doc order]}, "logged_samples": []}, the accumulator `evaluate` fills."""
    from lm_eval.evaluator_utils import _process_results

    return _process_results(per_item, groups, bootstrap_iters=bootstrap_iters)._to_eval_results()


def filter_names(task) -> list[str]:
    """The names of a loaded task's filter pipelines, in the order lm-eval applies them."""
    return [f.name for f in task._filters]


def keep_every_output(task) -> None:
    """Replace the task's filters by one that passes every output on (lm-eval's default keeps
    the first of the k outputs of `repeats`)."""
    from lm_eval.filters import build_filter_ensemble

    task._filters = [build_filter_ensemble("none", [])]


def add_metric(task, name: str, higher_is_better: bool) -> None:
    """Declare a per-item metric the task's YAML does not list, aggregated by lm-eval's mean."""
    from lm_eval.api.metrics import mean

    task._aggregation_list[name] = mean
    task._higher_is_better[name] = higher_is_better


def manager_with_metadata(scanned, metadata: dict):
    """A TaskManager sharing `scanned`'s index of task files (only ever read: every load reads
    the YAML files again) that gives every task it loads `metadata`."""
    from lm_eval.tasks._factory import TaskFactory

    tm = copy.copy(scanned)
    tm.metadata = metadata
    tm._factory = TaskFactory(meta=metadata)
    return tm


_QUIET_LOCK = threading.Lock()
_quiet_runs: list = []
"""lm-eval's original `tqdm` while runs of this process (a sweep's engines) keep it silenced."""


@contextlib.contextmanager
def task_progress(enabled: bool):
    """lm-eval draws one bar per task while it builds requests (`lm_eval.api.task`'s module-level
    `tqdm`, never disabled). TQDM_DISABLE cannot silence it: tqdm reads its TQDM_* variables once,
    when it is imported. Disabled, a silent bar stands in for the duration; concurrent runs share
    the swap and the last one out restores the original."""
    if enabled:
        yield
        return
    from lm_eval.api import task as lm_eval_task

    with _QUIET_LOCK:
        if not _quiet_runs:
            _quiet_runs.append(lm_eval_task.tqdm)
            lm_eval_task.tqdm = functools.partial(lm_eval_task.tqdm, disable=True)
        else:
            _quiet_runs.append(_quiet_runs[0])
    try:
        yield
    finally:
        with _QUIET_LOCK:
            original = _quiet_runs.pop()
            if not _quiet_runs:
                lm_eval_task.tqdm = original
