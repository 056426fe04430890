"""Bad input through the real CLI: a clear error naming file, line and field, exit 2, and no
result that claims to be complete. The server is the session's tiny vLLM server."""

import json
import re
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.run.tasks import check_task_versions
from longact.cli import main

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]
GOOD = json.loads((ROOT / "tasks" / "longbench_v2" / "data" / "fixture.jsonl").read_text().splitlines()[0])


def row(**changes):
    r = {**GOOD, **changes}
    return json.dumps({k: v for k, v in r.items() if v is not ...}, ensure_ascii=False)


BAD_LONGBENCH_FILES = {
    "truncated_json_line": (row() + "\n" + row(_id="b")[:60] + "\n", r"line 2: invalid JSON"),
    "missing_field": (row(question=...) + "\n", r"line 1, field 'question': missing"),
    "wrong_type": (row(context=5) + "\n", r"line 1, field 'context': expected str, got int"),
    "empty_file": ("", r"no rows \(the file is empty\)"),
    "answer_outside_choices": (row(answer="E") + "\n", r"line 1, field 'answer': expected one of A, B, C, D"),
    "duplicate_ids": (row() + "\n" + row() + "\n", r"line 2.*duplicate"),
}


def run_cli(capsys, vllm_server, tiny_model_dir, out: Path, tasks: str, metadata: dict, tokenizer=None):
    code = main(["eval", "--base-url", vllm_server.base_url, "--tokenizer", str(tokenizer or tiny_model_dir),
                 "--tasks", tasks, "--output-dir", str(out), "--quiet", "--metadata", json.dumps(metadata)])
    return code, capsys.readouterr().err


def assert_failed_cleanly(out: Path):
    for run_json in out.glob("*/run.json"):
        assert json.loads(run_json.read_text())["status"] == "failed"
        assert not list(run_json.parent.glob("samples_*.jsonl"))


@pytest.mark.parametrize("kind", sorted(BAD_LONGBENCH_FILES))
def test_bad_longbench_file(kind, capsys, vllm_server, tiny_model_dir, tmp_path):
    text, expected = BAD_LONGBENCH_FILES[kind]
    bad = tmp_path / f"{kind}.jsonl"
    bad.write_text(text)
    code, err = run_cli(capsys, vllm_server, tiny_model_dir, tmp_path / "out", "longbench_v2", {"data_path": str(bad)})
    assert code == 2, err
    assert str(bad) in err and re.search(expected, err), err
    assert_failed_cleanly(tmp_path / "out")


def test_non_utf8_bytes(capsys, vllm_server, tiny_model_dir, tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(row().encode() + b"\n" + row(_id="x", question="caf\xe9").encode("latin-1") + b"\n")
    code, err = run_cli(capsys, vllm_server, tiny_model_dir, tmp_path / "out", "longbench_v2", {"data_path": str(bad)})
    assert code == 2 and f"{bad} line 2: not UTF-8" in err, err
    assert_failed_cleanly(tmp_path / "out")


def test_huge_single_line(capsys, vllm_server, tiny_model_dir, tmp_path):
    bad = tmp_path / "huge.jsonl"
    bad.write_text(row(context="x" * (65 << 20)) + "\n")
    code, err = run_cli(capsys, vllm_server, tiny_model_dir, tmp_path / "out", "longbench_v2", {"data_path": str(bad)})
    assert code == 2 and f"{bad} line 1: line is" in err and "limit" in err, err


def test_malformed_ruler_qa_file_and_lengths(capsys, vllm_server, tiny_model_dir, tmp_path):
    bad = tmp_path / "squad.json"
    bad.write_text(json.dumps({"data": [{"paragraphs": [{"context": "c"}]}]}))
    code, err = run_cli(capsys, vllm_server, tiny_model_dir, tmp_path / "a", "ruler_qa_squad",
                        {"squad_path": str(bad), "lengths": [2048], "num_samples": 1})
    assert code == 2 and str(bad) in err and "qas" in err, err
    code, err = run_cli(capsys, vllm_server, tiny_model_dir, tmp_path / "b", "ruler_niah_single_1", {"lengths": ["2k"]})
    assert code == 2 and "field 'lengths': expected a list of integers" in err, err
    assert_failed_cleanly(tmp_path / "a")


def test_mismatched_tokenizer_is_refused(capsys, vllm_server, tiny_model_dir, tmp_path):
    from longact.tiny.model import TinyModelSpec, build_tiny_model

    other = build_tiny_model(tmp_path / "other", TinyModelSpec(seed=7))
    code, err = run_cli(capsys, vllm_server, tiny_model_dir, tmp_path / "out", "tiny_kv", {}, tokenizer=other)
    assert code == 2 and "does not match the served model's" in err, err
    assert_failed_cleanly(tmp_path / "out")


def test_task_without_version_is_refused():
    class Cfg:
        metadata = {"endpoint": "chat"}

    class Task:
        config = Cfg()

    with pytest.raises(UserError, match="task t declares no metadata.version"):
        check_task_versions({"t": Task()})
