import json
import os
import threading

import pytest

from harness.errors import UserError
from harness.records.io import atomic_write_json, create_run_dir, load_run, write_run
from harness.records.schema import CodeInfo, Metric, ModelInfo, RunRecord, SchemaError, ServingInfo, TaskResult


def _record(run_id="r1") -> RunRecord:
    return RunRecord(
        run_id=run_id, status="complete", model=ModelInfo(path="m", weights_sha256="ab"),
        serving=ServingInfo(backend="server", max_model_len=2048),
        code=CodeInfo(harness_version="0.1.0", git_commit="c", git_dirty=False),
        tasks={"t": TaskResult(version="1.0", config_hash="h", dataset_fingerprint="f", endpoint="chat",
                               n_samples=3, metrics={"score": Metric(33.3, 27.2, 3)})},
        groups={"g": {"score": Metric(1.0, None, 3)}}, limit=None, requests={"total": 3},
    )


def test_round_trip(tmp_path):
    rec = _record()
    write_run(tmp_path, rec)
    assert load_run(tmp_path) == rec
    assert RunRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_unknown_field_is_rejected_with_its_path():
    d = _record().to_dict()
    d["tasks"]["t"]["surprise"] = 1
    with pytest.raises(SchemaError, match=r"run\.tasks\.t: unknown field"):
        RunRecord.from_dict(d)


def test_wrong_type_names_the_field():
    d = _record().to_dict()
    d["tasks"]["t"]["metrics"]["score"]["n"] = "three"
    with pytest.raises(SchemaError, match=r"run\.tasks\.t\.metrics\.score\.n: expected an integer"):
        RunRecord.from_dict(d)
    d = _record().to_dict()
    del d["model"]
    with pytest.raises(SchemaError, match="missing required field 'model'"):
        RunRecord.from_dict(d)


def test_every_schema_field_has_a_docstring():
    import ast
    import inspect

    import harness.records.schema as schema

    tree = ast.parse(inspect.getsource(schema))
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in
                ("RunRecord", "TaskResult", "ServingInfo", "ModelInfo", "Metric", "CodeInfo", "SampleRecord")]:
        body = cls.body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                name = node.target.id
                nxt = body[i + 1] if i + 1 < len(body) else None
                documented = isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                self_explanatory = name in {"run_id", "status", "model", "serving", "code", "tasks", "seeds",
                                            "packages", "host", "started_at", "finished_at", "wall_time_s",
                                            "schema_version", "kind", "dtype", "tensor_parallel_size",
                                            "extra_args", "base_url", "harness_version", "git_commit",
                                            "generation_kwargs", "n_samples", "prompt_tokens",
                                            "completion_tokens", "metrics", "doc_id", "prompt_hash",
                                            "truncated", "target", "error", "from_cache", "finish_reason",
                                            "path"}
                assert documented or self_explanatory, f"{cls.name}.{name} has no docstring"


def test_load_run_names_the_file_on_bad_json(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="run.json: not valid JSON"):
        load_run(tmp_path)


def test_run_ids_unique_under_concurrency(tmp_path):
    ids, errors = [], []

    def make():
        try:
            ids.append(create_run_dir(tmp_path)[0])
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 32
    assert len(list(tmp_path.iterdir())) == 32


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write_json(path, {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_is_a_clear_error_as_user(tmp_path):  # pragma: no cover - CI runs as root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(UserError, match="cannot write to output directory"):
        create_run_dir(ro)


def test_output_dir_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="cannot write to output directory"):
        create_run_dir(f / "sub")


def test_results_readme_names_only_what_exists_or_what_a_command_writes():
    """results/README.md once sent readers to a results/reference/ folder that was not there."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    text = (root / "results" / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"`([\w./-]+/[\w./<>-]*)`", text)
    code = [p for p in named if p.split("/")[0] in ("harness", "tasks", "training", "longact", "tests")]
    assert code and [p for p in code if not (root / p).exists()] == []
    for sentence in re.split(r"(?<=[.;])\s+", text):
        for folder in re.findall(r"`(results/[\w.-]+/)`", sentence):
            assert (root / folder).exists() or re.search(r"\bwrites?\b|\byet\b", sentence), (folder, sentence)
