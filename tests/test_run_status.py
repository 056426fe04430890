"""Where a run appears (`longact show`, `compare`, `leaderboard`), its status and the command that
finishes it appear too; runs of one model are labelled by what differs between them.

A killed run leaves run.json saying `running`: the run directory's lock (free once the process is
gone) tells it from a live one."""

import json
import os

import pytest

from harness.records.io import lock_run_dir
from longact.cli import main
from tests.test_compare import write_run

EVAL = ["longact", "eval", "--model", "models/m", "--tasks", "tiny", "--max-model-len", "2048"]


def edit_record(run_dir, **changes):
    data = json.loads((run_dir / "run.json").read_text())
    data.update(changes)
    (run_dir / "run.json").write_text(json.dumps(data))
    return run_dir


def killed(root, name):
    """What SIGKILL leaves: run.json still `running`, no results, a lock file nobody holds."""
    run = write_run(root, name, {})
    edit_record(run, status="running", tasks={}, groups={}, command=EVAL,
                serving={**json.loads((run / "run.json").read_text())["serving"], "max_model_len": 0})
    (run / ".lock").write_text("pid 999999\n")
    return run


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    write_run(root, "base", {"tiny_passkey": [100, 0, 0, 100], "tiny_kv": [0, 0, 0, 0]})
    edit_record(write_run(root, "failed", {}), status="failed", tasks={}, groups={}, command=EVAL,
                errors=["ServerStartError: vLLM exited with code 1 during start-up\nlog tail ..."])
    killed(root, "killed")
    return root


def test_show_of_a_killed_run_says_it_stopped_and_how_to_resume(results, capsys):
    run = results / "killed"
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert " · stopped · " in head and "running" not in head and "window 0" not in head
    assert "stopped before finishing" in out and "no process holds the run" in out
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    assert f"to resume: longact eval --model models/m --tasks tiny --max-model-len 2048 --run-id {run_id}" in out


def test_show_of_a_live_run_says_running(results, capsys):
    run = results / "killed"
    lock = lock_run_dir(run)               # a live writer: this process holds the lock
    try:
        assert main(["show", str(run)]) == 0
    finally:
        lock.close()
    out = capsys.readouterr().out
    assert " · running · " in out.splitlines()[0] and "to resume" not in out
    assert f"running (pid {os.getpid()})" in out


def test_show_of_a_failed_run_gives_the_error_and_the_command(results, capsys):
    assert main(["show", str(results / "failed")]) == 0
    out = capsys.readouterr().out
    assert "failed: ServerStartError: vLLM exited with code 1 during start-up" in out and "to resume: longact eval" in out


def test_leaderboard_marks_unfinished_runs_with_their_status_and_command(results, tmp_path, capsys):
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "site")]) == 0
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    lines = md.splitlines()
    assert lines[2] == "| model   | status   |   tiny suite Avg |"
    assert "| base    | complete |            25.0† |" in md          # 2 of the suite's 4 tasks
    assert "| failed  | failed   |                – |" in md
    assert "| killed  | stopped  |                – |" in md
    assert "killed: 20261128T000000Z-00killed: stopped before finishing" in md
    assert "to resume: `longact eval --model models/m" in md
    page = (tmp_path / "site" / "index.html").read_text()
    assert '<td class="status"' in page and "stopped before finishing" in page and "&#34;resume&#34;" in page


def test_compare_with_an_unfinished_run_says_so_first(results, capsys):
    assert main(["compare", str(results / "base"), str(results / "killed")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not every run has finished:")
    assert "killed: stopped before finishing" in err and "to resume: longact eval" in err
    assert "window" not in err and "truncat" not in err         # not blamed on settings it never reached
    assert main(["compare", str(results / "base"), str(results / "killed"), "--force"]) == 0
    out = capsys.readouterr().out
    assert "| run    | status   |" in out and "| killed | stopped  |" in out
    assert "- killed: stopped before finishing" in out and "vs 0" not in out    # no window is not another window


def test_runs_of_one_model_are_labelled_by_what_differs(tmp_path, capsys):
    root = tmp_path / "results"
    for name, window in (("a", 2048), ("b", 4096)):
        run = write_run(root, name, {"tiny_kv": [100, 0]}, window=window)
        edit_record(run, model={**json.loads((run / "run.json").read_text())["model"], "path": "ckpt/qwen3"})
    twin = write_run(root, "c", {"tiny_kv": [0, 0]}, window=4096)       # same model and settings as b
    edit_record(twin, model={**json.loads((twin / "run.json").read_text())["model"], "path": "ckpt/qwen3"},
                mode="reasoning")
    assert main(["leaderboard", str(root), "--out", str(tmp_path / "site")]) == 0
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    # the leaderboard joins a and b (one model, one way: the window does not split a row) and says
    # which run its tiny_kv cell reads; c was run in another mode, a row of its own
    assert "| qwen3 (official mode)  |" in md and "| qwen3 (reasoning mode) |" in md
    page = (tmp_path / "site" / "index.html").read_text()
    assert ("tiny_kv: read from 20261128T000000Z-0000000b; over 20261128T000000Z-0000000a: the larger window "
            "(window 4096 vs window 2048)") in page

    from harness.report.compare import label_runs, load

    same = [load(write_run(tmp_path / "same", n, {"tiny_kv": [0]})) for n in ("x", "y")]
    for run in same:
        run.record.model.path = "ckpt/qwen3"
    label_runs(same)
    assert [r.label for r in same] == ["qwen3 (0000000x)", "qwen3 (0000000y)"]   # nothing else differs
    chosen = [load(write_run(tmp_path / "chosen", n, {"tiny_kv": [0]})) for n in ("ib-fixture-4k", "lb-fixture-4k")]
    for run in chosen:
        run.record.model.path = "ckpt/qwen3"
    for run, run_id in zip(chosen, ("smollm2-ib-fixture-4k", "smollm2-lb-fixture-4k")):
        run.record.run_id = run_id   # chosen with --run-id: they end alike, so the whole id is shown
    label_runs(chosen)
    assert [r.label for r in chosen] == ["qwen3 (smollm2-ib-fixture-4k)", "qwen3 (smollm2-lb-fixture-4k)"]


def test_the_resume_command_writes_into_the_same_run_directory_only_for_eval(tmp_path):
    from harness.records.io import load_run
    from harness.records.state import resume_command

    rec = load_run(write_run(tmp_path, "r", {"tiny_kv": [0]}))
    assert resume_command(rec) is None                                          # no command: an imported run
    rec.command = ["longact", "eval", "--model", "my model/ckpt", "--tasks", "tiny"]
    assert resume_command(rec) == f"longact eval --model 'my model/ckpt' --tasks tiny --run-id {rec.run_id}"
    rec.command = ["longact", "eval", "--run-id=x", "--tasks", "tiny"]
    assert resume_command(rec) == "longact eval --run-id=x --tasks tiny"
    rec.command = ["longact", "eval", "--experiment", "runs/exp/experiment.json", "--tasks", "tiny"]
    assert resume_command(rec).endswith("--tasks tiny")                         # arms name their own directories
    rec.command = ["longact", "demo"]
    assert resume_command(rec) == "longact demo"
