"""`results_<timestamp>.json`: a run in lm-evaluation-harness 0.4's results layout, read back by
lm-eval's own code (`make_table`, the results-file helpers, the `EvalResults` key set)."""

import json

import pytest

from harness.records.lm_eval_format import lm_eval_results, results_file_name, write_lm_eval_results
from harness.records.schema import CodeInfo, Metric, ModelInfo, RunRecord, ServingInfo, TaskResult
from longact.cli import main


def record(**changes) -> RunRecord:
    def task(value, stderr, n, **metrics):
        return TaskResult(version="1.0", config_hash="c" * 64, dataset_fingerprint="d" * 64, endpoint="chat",
                          generation_kwargs={"max_gen_toks": 32}, n_samples=n,
                          metrics={"score": Metric(value, stderr, n), **metrics})

    rec = RunRecord(
        run_id="20261128T120000Z-1a2b3c4d", status="complete",
        model=ModelInfo(path="models/tiny-qwen3", weights_sha256="w" * 64, tokenizer_sha256="t" * 64,
                        tokenizer="models/tiny-qwen3"),
        serving=ServingInfo(backend="server", base_url="http://127.0.0.1:8000", max_model_len=2048, concurrency=8),
        code=CodeInfo(harness_version="0.1.0", git_commit="abc1234", git_dirty=False),
        tasks={"tiny_kv": task(40.0, 9.1, 30), "tiny_mc": task(25.0, None, 40, **{"null_rate[strict]": Metric(5.0, 1.0, 40)})},
        groups={"tiny": {"score": Metric(32.5, 4.2, 70)}}, group_members={"tiny": ["tiny_kv", "tiny_mc"]},
        seeds={"python": 0, "numpy": 0, "torch": 0, "fewshot": 0}, packages={"lm_eval": "0.4.13", "transformers": "4.57.0"},
        started_at="2026-11-28T12:00:00.000000Z", finished_at="2026-11-28T12:05:30.250000Z", wall_time_s=330.25)
    for k, v in changes.items():
        setattr(rec, k, v)
    return rec


def test_the_layout_is_lm_evals():
    from lm_eval.result_schema import EvalResults

    out = lm_eval_results(record())
    assert set(out) - {"longact"} <= set(EvalResults.__annotations__)          # only keys lm-eval defines, plus ours
    assert out["results"]["tiny_kv"] == {"alias": "tiny_kv", "name": "tiny_kv", "sample_len": 30,
                                         "score,none": 40.0, "score_stderr,none": 9.1}
    mc = out["results"]["tiny_mc"]
    assert mc["score_stderr,none"] == "N/A"                                      # lm-eval's word for no stderr
    assert mc["null_rate,strict"] == 5.0 and mc["null_rate_stderr,strict"] == 1.0  # our `m[f]` is lm-eval's `m,f`
    assert out["groups"]["tiny"] == out["results"]["tiny"] and out["groups"]["tiny"]["sample_len"] == 70
    assert out["group_subtasks"] == {"tiny": ["tiny_kv", "tiny_mc"]}
    assert out["versions"] == {"tiny_kv": 1.0, "tiny_mc": 1.0}
    assert out["n-samples"]["tiny_kv"] == {"original": 30, "effective": 30}
    assert out["configs"]["tiny_kv"]["metadata"]["config_hash"] == "c" * 64
    assert out["config"]["model_args"] == ("model=models/tiny-qwen3,base_url=http://127.0.0.1:8000,"
                                           "tokenizer=models/tiny-qwen3,max_length=2048")
    assert out["date"] == 1795867200.0 and out["total_evaluation_time_seconds"] == "330.25"
    assert out["model_name_sanitized"] == "models__tiny-qwen3" and out["git_hash"] == "abc1234"
    assert out["longact"]["run_id"] == "20261128T120000Z-1a2b3c4d"
    limited = lm_eval_results(record(limit=5.0))
    assert limited["n-samples"]["tiny_kv"] == {"original": None, "effective": 30} and limited["config"]["limit"] == 5.0


def test_lm_evals_own_readers_read_it(tmp_path):
    from lm_eval.utils import get_latest_filename, get_results_filenames, make_table, sanitize_model_name

    path = write_lm_eval_results(tmp_path, record())
    assert path.name == "results_2026-11-28T12-05-30.250000.json"                # lm-eval's date_id naming
    assert get_results_filenames([str(path), str(tmp_path / "run.json")]) == [str(path)]
    data = json.loads(path.read_text())
    table = make_table(data)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "| 40.0|±  |   9.1|" in rows["- tiny_kv"] and "|none  |" in rows["- tiny_kv"]   # indented under its group
    assert "|strict|" in rows["- tiny_mc"] and "|   N/A|" in table and "| 32.5|" in rows["tiny"]
    assert "|tiny  |    N/A|none  |      |score |   | 32.5|±  |   4.2|" in make_table(data, "groups")
    assert sanitize_model_name(data["model_name"]) == data["model_name_sanitized"]
    later = write_lm_eval_results(tmp_path, record(finished_at="2026-11-29T08:00:00.000000Z"))  # a resumed run
    assert sorted(p.name for p in tmp_path.glob("results_*.json")) == [later.name]
    assert get_latest_filename([str(later)]) == str(later)


def test_an_unfinished_record_is_dated_by_its_start():
    assert results_file_name(record(status="running", finished_at=None)) == "results_2026-11-28T12-00-00.json"


def test_show_lm_eval_writes_it_for_existing_runs(tmp_path, capsys):
    from tests.test_compare import write_run

    run = write_run(tmp_path, "base", {"tiny_passkey": [100, 0, 0, 100], "tiny_kv": [0, 0, 0, 0]})
    assert main(["show", str(run), "--lm-eval"]) == 0
    (path,) = run.glob("results_*.json")
    assert capsys.readouterr().out == f"wrote {path}\n"
    data = json.loads(path.read_text())
    assert data["results"]["tiny_passkey"]["score,none"] == 50.0 and data["group_subtasks"] == {"tiny": ["tiny_kv", "tiny_passkey"]}
    assert main(["show", str(run / "run.json"), "--lm-eval"]) == 0             # again: the same file, rewritten
    assert list(run.glob("results_*.json")) == [path]


def test_show_lm_eval_of_a_run_without_results_says_why(tmp_path, capsys):
    from tests.test_run_status import killed

    run = killed(tmp_path, "killed")
    assert main(["show", str(run), "--lm-eval"]) == 2
    err = capsys.readouterr().err
    assert "no results to write (stopped before finishing" in err and "to resume: longact eval" in err
    assert not list(run.glob("results_*.json"))


@pytest.mark.parametrize("content", ["123", "The key is 123."])
def test_imported_runs_get_one_too(tmp_path, content):
    preds = tmp_path / "preds_passkey.jsonl"
    preds.write_text(json.dumps({"id": 0, "prediction": content, "ground_truth": ["123"]}) + "\n")
    assert main(["score", "infinitebench", str(preds), "--task", "passkey", "--save-run", str(tmp_path / "res")]) == 0
    (path,) = (tmp_path / "res").glob("*/results_*.json")
    assert json.loads(path.read_text())["results"]["infinitebench_passkey"]["score,none"] == 100.0
