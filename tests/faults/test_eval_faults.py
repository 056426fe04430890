"""Nothing is lost when the server or the harness dies mid-run, or two evals share a directory.

Each test compares against an uninterrupted run on the same (greedy) tasks: the resumed run must
reuse every answer finished before the fault, send only the rest, and end with equal scores.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.backends.serve import ServerConfig, VLLMServer
from harness.records.io import load_run
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from tests.conftest import SERVER_WINDOW

pytestmark = [pytest.mark.server, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def cached_answers(out_dir: Path) -> int:
    total = 0
    for db in (out_dir / ".cache").glob("*.sqlite"):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            try:
                total += con.execute("SELECT COUNT(*) FROM unnamed WHERE key != 'served_identity'").fetchone()[0]
            except sqlite3.OperationalError:  # table not created yet
                pass
    return total


def eval_cli(*args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "longact.cli", "eval", "--tasks", "tiny", "--quiet", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_answers(out_dir: Path, proc: subprocess.Popen, at_least: int, timeout: float = 600) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = cached_answers(out_dir)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the fault could be injected:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    pytest.fail("no answers were cached in time")


def scores(run_dir: Path) -> dict:
    rec = load_run(run_dir)
    return {t: {m: round(v.value, 6) for m, v in r.metrics.items()} for t, r in rec.tasks.items()}


@pytest.fixture(scope="module")
def reference(vllm_server, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["tiny"], output_dir=str(out), use_cache=False, progress=False))
    run_dir = run_eval(cfg)
    return scores(run_dir), load_run(run_dir).requests["total"]


def resume(vllm_server, tiny_model_dir, out: Path):
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["tiny"], output_dir=str(out), progress=False))
    return run_eval(cfg)


def test_server_killed_mid_run_then_rerun_resumes(reference, vllm_server, tiny_model_dir, tmp_path):
    ref_scores, total = reference
    out = tmp_path / "results"
    doomed = VLLMServer(ServerConfig(model=str(tiny_model_dir), max_model_len=SERVER_WINDOW), log_path=tmp_path / "doomed.log")
    doomed.start()
    try:
        proc = eval_cli("--base-url", doomed.base_url, "--tokenizer", str(tiny_model_dir), "--output-dir", str(out),
                        "--concurrency", "1", "--max-retries", "1")
        wait_for_answers(out, proc, at_least=30)
        for pid in doomed.pids():
            os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
    finally:
        doomed.stop()
    assert proc.returncode == 3, output[-3000:]                      # incomplete, not a crash
    assert "rerun the same command" in output
    first = load_run(next(p for p in out.iterdir() if p.name != ".cache"))
    assert first.status == "incomplete" and first.requests["failed"] > 0
    before = cached_answers(out)
    assert 30 <= before < total

    rec = load_run(resume(vllm_server, tiny_model_dir, out))
    assert rec.status == "complete"
    assert rec.requests["cached"] == before                          # nothing answered is sent again
    assert rec.requests["sent"] == total - before
    assert scores(out / rec.run_id) == ref_scores


def test_harness_killed_mid_run_leaves_no_server_and_resumes(reference, vllm_server, tiny_model_dir, tmp_path):
    ref_scores, total = reference
    out = tmp_path / "results"
    proc = eval_cli("--model", str(tiny_model_dir), "--max-model-len", str(SERVER_WINDOW), "--output-dir", str(out),
                    "--concurrency", "1")
    wait_for_answers(out, proc, at_least=30)
    server_pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.kill()                                                      # SIGKILL: no cleanup code runs
    proc.wait(timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                         for p in server_pids):
        time.sleep(0.5)
    survivors = [p for p in server_pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors, "the managed vLLM server outlived a SIGKILLed harness"
    run_json = json.loads(next(out.glob("*/run.json")).read_text())
    assert run_json["status"] == "running"                           # never claims to be complete
    before = cached_answers(out)

    rec = load_run(resume(vllm_server, tiny_model_dir, out))
    assert rec.status == "complete" and rec.requests["cached"] == before
    assert rec.requests["sent"] == total - before
    assert scores(out / rec.run_id) == ref_scores


def test_two_evals_in_one_results_directory_do_not_clobber(reference, vllm_server, tiny_model_dir, tmp_path):
    ref_scores, _ = reference
    out = tmp_path / "shared"
    procs = [eval_cli("--base-url", vllm_server.base_url, "--tokenizer", str(tiny_model_dir),
                      "--output-dir", str(out), "--concurrency", "4") for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    runs = sorted(p for p in out.iterdir() if p.name != ".cache")
    assert len(runs) == 2
    for run_dir in runs:
        assert load_run(run_dir).status == "complete"
        assert scores(run_dir) == ref_scores
