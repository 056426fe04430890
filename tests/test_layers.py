"""The import directions of the layers, read from the source (AST), and no import cycles.

    longact (app)  ->  harness, training  ->  tasks

`tasks/` is lm-eval's include_path and must load with nothing but lm-eval installed beside it;
`training/` reads prompts, scorers and rewards from `tasks/` and never the harness or the app;
`harness/` never imports the trainer or the app. Only the app imports both halves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("longact", "harness", "training", "tasks")
ALLOWED = {
    "tasks": {"tasks"},
    "training": {"training", "tasks"},
    "harness": {"harness", "tasks"},
    "longact": {"longact", "harness", "training", "tasks"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_imports(path: Path) -> set[str]:
    """Every project module `path` imports, at any depth (function-level imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n.split(".")[0] in PACKAGES}
    return out


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def test_every_import_points_down():
    bad = []
    for name, path in sorted(all_modules().items()):
        layer = name.split(".")[0]
        for target in sorted(project_imports(path)):
            if target.split(".")[0] not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    modules = all_modules()

    def resolve(target: str) -> str | None:  # `from a.b import c` may name a module or a symbol
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph = {m: {t for t in map(resolve, project_imports(p)) if t and t != m} for m, p in modules.items()}
    # Packages' __init__ modules are imported implicitly with their children; leave them out of cycles.
    graph = {m: {t for t in ts if modules[t].name != "__init__.py"} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_scan_sees_upward_imports(tmp_path, monkeypatch):
    """The checker itself: a module that reaches up is reported (function-level and relative too)."""
    pkg = ROOT / "tasks"
    fake = pkg / "_layer_probe.py"
    assert not fake.exists()
    fake.write_text("def f():\n    from harness.run import runner\n", encoding="utf-8")
    try:
        assert "harness.run" in project_imports(fake)
        with pytest.raises(AssertionError, match="tasks/_layer_probe.py imports harness.run"):
            test_every_import_points_down()
    finally:
        fake.unlink()


BLOCKED_LOAD = r"""
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("harness", "training", "longact"):
            raise ImportError(f"{name} is blocked: tasks/ must load with plain lm-eval")

sys.meta_path.insert(0, Block())
from lm_eval.tasks import TaskManager

out = {}
for bench, (names, metadata) in json.loads(sys.argv[1]).items():  # one TaskManager per benchmark
    tm = TaskManager(include_path=sys.argv[2], include_defaults=False, metadata=metadata)
    loaded = tm.load(names)
    out[bench] = {}
    for name, task in loaded["tasks"].items():
        docs = list(task.eval_docs)
        out[bench][name] = {"n": len(docs), "truncated": sum(bool(d.get("_truncated")) for d in docs),
                            "prompt": isinstance(task.doc_to_text(docs[0]), str)}
print(json.dumps(out))
"""
BENCHES = ["longbench_v2", "infinitebench", "ruler", "tiny"]


@pytest.fixture(scope="module")
def plain_lm_eval_loads(tiny_model_dir):
    """Every benchmark loaded in one plain-lm-eval process (one import of lm-eval, not four)."""
    import json
    import subprocess
    import sys

    from tests.conftest import FIXTURE_RUNS

    runs = {}
    for bench in BENCHES:
        spec = FIXTURE_RUNS[bench]
        # A small window so the official truncation really cuts (LongBench v2 and InfiniteBench).
        window = 2048 if bench == "ruler" else 1024  # RULER builds its fixture at 2048 tokens
        runs[bench] = (spec["tasks"], {"tokenizer": str(tiny_model_dir), "max_model_len": window, **spec["metadata"]})
    proc = subprocess.run([sys.executable, "-c", BLOCKED_LOAD, json.dumps(runs), str(ROOT / "tasks")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("bench", BENCHES)
def test_tasks_load_with_official_truncation_under_plain_lm_eval(bench, plain_lm_eval_loads):
    """lm-eval by hand (`--include_path tasks`), official truncation switched on with the tokenizer
    and window in the metadata, while harness/, training/ and the app cannot be imported."""
    out = plain_lm_eval_loads[bench]
    assert out and all(t["n"] > 0 and t["prompt"] for t in out.values()), out
    if bench in ("longbench_v2", "infinitebench"):
        assert sum(t["truncated"] for t in out.values()) > 0, out
