"""SIGINT and SIGTERM end every phase of `longact eval`: status `interrupted`, the answers that
arrived saved, exit code 128 + signal, within 10 s of the signal, no server left behind.

Each case injects the signal at its phase from inside the process (tests/faults/interrupt_driver.py
wraps that phase's entry point), so nothing depends on timing. Requests in flight are interrupted
from outside, once the stub server holds them. Every child starts with SIGINT *ignored*, as a job
started in the background of a script or CI inherits it: the harness must install its own handlers.
"""

from __future__ import annotations

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

from harness.records.io import load_run
from tests.stub_openai import ok_answer

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("interrupt_driver.py")
WITHIN_S = 10.0


def as_in_a_background_job() -> None:
    """A non-interactive shell starts `cmd &` with SIGINT ignored; CI runs the suite that way."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(phase: str, sig: str, argv: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    stamp = tmp_path / "signal_at"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(DRIVER), phase, sig, str(stamp), "--", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_in_a_background_job)
    return proc, stamp


def finish(proc: subprocess.Popen, stamp: Path, sig: str, out_dir: Path) -> str:
    """Wait for the process; check how it ended; returns its stderr."""
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"still running 120 s after the signal:\n{err[-3000:]}") from None
    seconds = time.time() - float(stamp.read_text())
    code = 128 + getattr(signal, sig)
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{err[-3000:]}"
    assert seconds < WITHIN_S, f"{seconds:.1f} s after the signal:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert "interrupted" in err
    runs = list(out_dir.glob("2*/run.json"))
    assert len(runs) == 1, runs
    rec = json.loads(runs[0].read_text())
    assert rec["status"] == "interrupted", rec["status"]
    return err


def cached_answers(out_dir: Path) -> int:
    files = list((out_dir / ".cache").glob("*.sqlite"))
    if not files:
        return 0
    with sqlite3.connect(files[0]) as db:
        return db.execute("select count(*) from unnamed where key != 'served_identity'").fetchone()[0]


def eval_argv(url: str, tokenizer, out_dir: Path) -> list[str]:
    return ["eval", "--base-url", url, "--tokenizer", str(tokenizer), "--tasks", "tiny_passkey", "--concurrency", "2",
            "--quiet", "--output-dir", str(out_dir)]


@pytest.mark.parametrize("phase,sig", [
    ("probe", "SIGTERM"),
    ("tasks", "SIGINT"),
    ("swallowed", "SIGINT"),
    ("results", "SIGTERM"),
])
def test_a_signal_ends_each_phase(phase, sig, stubs, tiny_model_dir, tmp_path):
    s = stubs()
    out = tmp_path / "out"
    proc, stamp = start(phase, sig, eval_argv(s.url, tiny_model_dir, out), tmp_path)
    finish(proc, stamp, sig, out)
    sent = len(s.completions())
    if phase == "results":  # every answer arrived before the signal: all of them saved, a rerun sends nothing
        assert sent == 30 and cached_answers(out) == 30
    else:  # stopped before any request
        assert sent == 0


def test_a_signal_during_a_cache_write_lets_the_write_finish(stubs, tiny_model_dir, tmp_path):
    s = stubs()
    out = tmp_path / "out"
    proc, stamp = start("cache", "SIGINT", eval_argv(s.url, tiny_model_dir, out), tmp_path)
    finish(proc, stamp, "SIGINT", out)
    saved = cached_answers(out)
    assert saved >= 3  # the write the signal landed in, and every answer that had arrived
    # the queue stopped: at most the requests in flight (2) beyond those answered
    assert len(s.completions()) <= saved + 2


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_with_requests_in_flight_keeps_the_answers_and_a_rerun_sends_the_rest(sig, stubs, tiny_model_dir, tmp_path):
    """Four answers come back at once, then the server hangs (each answer would take a minute)."""
    answered = []

    def four_then_hang(path, body):
        if "logprobs" in body:
            return ok_answer(body)
        if len(answered) < 4:
            answered.append(1)
            return ok_answer(body, "1")
        time.sleep(60)
        return ok_answer(body)

    s = stubs(respond=four_then_hang)
    out = tmp_path / "out"
    proc, stamp = start("none", sig, eval_argv(s.url, tiny_model_dir, out), tmp_path)
    deadline = time.monotonic() + 120
    while len(s.completions()) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert len(s.completions()) == 6, "the run never had two requests hanging"
    stamp.write_text(str(time.time()))
    proc.send_signal(getattr(signal, sig))
    finish(proc, stamp, sig, out)
    assert len(s.completions()) == 6  # nothing queued was sent after the signal
    assert cached_answers(out) == 4

    again = stubs()  # the same weights (same probe answer): the rerun resumes
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rerun = subprocess.run([sys.executable, "-m", "longact", *eval_argv(again.url, tiny_model_dir, out)], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(again.completions()) == 26
    rec = load_run(sorted(out.glob("2*"))[-1])
    assert rec.status == "complete" and rec.requests["cached"] == 4


def _servers_for(model_path: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "vllm.entrypoints.openai.api_server" in cmd and str(model_path) in cmd:
            found.append(p)
    return found


@pytest.mark.server
def test_a_signal_during_vllm_startup_stops_the_server(tiny_model_dir, tmp_path):
    model = tmp_path / "model"  # a path of its own, so the server process can be found by its command line
    model.symlink_to(tiny_model_dir, target_is_directory=True)
    out = tmp_path / "out"
    argv = ["eval", "--model", str(model), "--tasks", "tiny_passkey", "--max-model-len", "1024", "--quiet",
            "--output-dir", str(out)]
    proc, stamp = start("startup", "SIGTERM", argv, tmp_path)
    err = finish(proc, stamp, "SIGTERM", out)
    assert "starting vLLM" in err and list(out.glob("2*/server.log"))  # it was launched
    assert _servers_for(model) == []
