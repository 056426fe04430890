"""The private lm-eval symbols harness/run/lm_eval_internals.py relies on exist in the installed
lm-eval, in the shape it uses them. After an lm-eval upgrade this file is the one that fails,
naming the symbol; docs/setup.md says what an upgrade requires."""

from __future__ import annotations

import inspect
from collections import defaultdict

import pytest

from harness.run import lm_eval_internals
from harness.run.lm_eval_internals import PRIVATE_SYMBOLS, PrivateSymbol, resolve
from harness.run.tasks import task_manager

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_KEYWORD = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def signature_problem(obj, params: tuple[str, ...]) -> str | None:
    """What keeps `obj` from being called with `params` (see `PrivateSymbol.params`), or None."""
    try:
        # A class is called through __init__ (tqdm's __new__ takes anything; its __init__ says what counts).
        sig = inspect.signature(obj.__init__) if inspect.isclass(obj) else inspect.signature(obj)
    except (TypeError, ValueError) as e:
        return f"has no readable signature ({e})"
    if inspect.isclass(obj):
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])  # self
    have = list(sig.parameters.values())
    cut = params.index("*") if "*" in params else len(params)
    for i, name in enumerate(params[:cut]):
        if i >= len(have) or have[i].name != name or have[i].kind not in _POSITIONAL:
            return f"parameter {i + 1} is no longer positional `{name}` (signature now {sig})"
    for name in params[cut + 1:]:
        if name not in sig.parameters or sig.parameters[name].kind not in _BY_KEYWORD:
            return f"takes no keyword `{name}` any more (signature now {sig})"
    required = [p.name for p in have if p.default is p.empty and p.kind not in _VARIADIC and p.name not in params]
    if required:
        return f"now requires {', '.join(required)}, which the harness does not pass (signature now {sig})"
    return None


def symbol_problem(symbol: PrivateSymbol, instances: dict) -> str | None:
    """Why `symbol` cannot be used as lm_eval_internals uses it, or None."""
    try:
        if symbol.on_instances:
            owner, _, attr = symbol.path.rpartition(".")
            cls = resolve(owner)
            instance = instances[owner]
            assert isinstance(instance, cls), f"test setup: {instance!r} is not a {owner}"
            obj = getattr(instance, attr)
        else:
            obj = resolve(symbol.path)
    except (ImportError, AttributeError) as e:
        return f"is gone ({type(e).__name__}: {e})"
    return signature_problem(obj, symbol.params) if symbol.params is not None else None


@pytest.fixture(scope="module")
def instances(tiny_model_dir):
    """One object of each class whose instances carry a private attribute the harness uses."""
    tm = task_manager({"tokenizer": str(tiny_model_dir), "max_model_len": 2048})
    return {"lm_eval.tasks.TaskManager": tm,
            "lm_eval.api.task.ConfigurableTask": tm.load(["tiny_mc"])["tasks"]["tiny_mc"]}


@pytest.mark.parametrize("symbol", PRIVATE_SYMBOLS, ids=[s.path for s in PRIVATE_SYMBOLS])
def test_private_symbol_is_there_in_the_shape_used(symbol, instances):
    problem = symbol_problem(symbol, instances)
    assert problem is None, (f"lm-eval's {symbol.path} {problem}: adapt harness/run/lm_eval_internals.py "
                             "to the installed lm-eval (docs/setup.md, 'Upgrading lm-eval')")


def test_a_missing_or_reshaped_symbol_is_reported_by_name(instances):
    gone = symbol_problem(PrivateSymbol("lm_eval.evaluator_utils._no_such_function", ("x",)), instances)
    assert gone is not None and "_no_such_function" in gone
    attr = symbol_problem(PrivateSymbol("lm_eval.tasks.TaskManager._no_such_attr", on_instances=True), instances)
    assert attr is not None and "_no_such_attr" in attr

    def reshaped(acc, *, groups, bootstrap_iters=1):
        pass

    assert "parameter 2" in signature_problem(reshaped, ("acc", "groups", "bootstrap_iters"))
    assert "keyword `samples`" in signature_problem(reshaped, ("acc", "*", "samples"))
    assert "requires groups" in signature_problem(reshaped, ("acc", "*", "bootstrap_iters"))
    assert signature_problem(reshaped, ("acc", "*", "groups", "bootstrap_iters")) is None


def test_every_private_name_the_module_touches_is_declared():
    """A private lm-eval name used in the code but missing from PRIVATE_SYMBOLS would go unchecked."""
    import ast

    tree = ast.parse(inspect.getsource(lm_eval_internals))
    lm_eval_imports = [node for node in ast.walk(tree)
                       if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lm_eval")]
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr.startswith("_")}
    used |= {alias.name for node in lm_eval_imports for alias in node.names if alias.name.startswith("_")}
    used |= {part for node in lm_eval_imports for part in node.module.split(".") if part.startswith("_")}
    declared = {part for s in PRIVATE_SYMBOLS for part in s.path.split(".")}
    assert used <= declared, f"undeclared private names: {sorted(used - declared)}"


def test_added_metric_is_what_lm_eval_reads(tiny_model_dir):
    task = task_manager({"tokenizer": str(tiny_model_dir)}).load(["tiny_mc"])["tasks"]["tiny_mc"]
    lm_eval_internals.add_metric(task, "extra_metric", False)
    assert task.aggregation()["extra_metric"]([1.0, 3.0]) == 2.0
    assert task.higher_is_better()["extra_metric"] is False


def test_every_output_reaches_the_scorer(tiny_model_dir):
    task = task_manager({"tokenizer": str(tiny_model_dir)}).load(["tiny_mc"])["tasks"]["tiny_mc"]
    assert lm_eval_internals.filter_names(task) == ["none"]
    lm_eval_internals.keep_every_output(task)
    (pipeline,) = task._filters
    assert pipeline.name == "none" and pipeline.filters == []  # lm-eval's default takes the first output


def test_manager_with_metadata_shares_the_scan(tiny_model_dir):
    scanned = task_manager()
    tm = lm_eval_internals.manager_with_metadata(scanned, {"tokenizer": str(tiny_model_dir), "max_model_len": 777})
    assert tm.all_tasks == scanned.all_tasks
    assert tm.load(["tiny_mc"])["tasks"]["tiny_mc"].config.metadata["max_model_len"] == 777
    assert scanned.metadata == {}


def test_aggregate_is_lm_evals_mean_and_stderr(tiny_model_dir):
    import statistics

    task = task_manager({"tokenizer": str(tiny_model_dir)}).load(["tiny_mc"])["tasks"]["tiny_mc"]
    metric = task.config.metric_list[0]["metric"]
    values = [0.0, 1.0, 1.0, 1.0]
    raw = defaultdict(list, {(metric, "none"): values})
    out = lm_eval_internals.aggregate({"tiny_mc": {"task": task, "raw_metrics": raw, "logged_samples": []}}, {},
                                      bootstrap_iters=10)
    row = out["results"]["tiny_mc"]
    assert row[f"{metric},none"] == pytest.approx(0.75)
    assert row[f"{metric}_stderr,none"] == pytest.approx(statistics.stdev(values) / len(values) ** 0.5)


def test_task_progress_swaps_the_bar_lm_eval_builds_requests_with():
    from lm_eval.api import task as lm_eval_task

    # lm-eval reads the module-level name when it builds requests: swapping it is what silences it.
    assert "tqdm" in lm_eval_task.ConfigurableTask.build_all_requests.__code__.co_names
    original = lm_eval_task.tqdm
    with lm_eval_internals.task_progress(False):
        with lm_eval_internals.task_progress(False):
            assert lm_eval_task.tqdm.keywords == {"disable": True}
        assert lm_eval_task.tqdm is not original  # the outer run still holds the swap
    assert lm_eval_task.tqdm is original
    with lm_eval_internals.task_progress(True):
        assert lm_eval_task.tqdm is original
