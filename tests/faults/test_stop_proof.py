"""A stop that stops and says what happened: no request starts after the stop, and a stopped
run's record counts what was sent, answered, cached and failed up to it, and how long it ran.
Against stub OpenAI servers (tests/stub_openai.py), the stop requested from the server's side at a
known answer, so nothing depends on timing."""

from __future__ import annotations

import threading
import time

import pytest

from harness import interrupt
from harness.records.io import load_run
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from tests.stub_openai import ok_answer


@pytest.fixture
def clean_stop():
    interrupt.reset()
    yield
    interrupt.reset()


def test_every_admitted_request_was_admitted_before_the_stop(clean_stop):
    """Senders race the stop: each one is either admitted before it or refused, never after."""
    admitted: list[float] = []
    refused = threading.Event()

    def sender():
        while (t := interrupt.admit()) is not None:
            admitted.append(t)
        refused.set()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    interrupt.request_stop()
    for t in threads:
        t.join(timeout=5)
    assert refused.is_set() and admitted and max(admitted) < interrupt.stopped_at()
    assert interrupt.admit() is None


def test_a_stopped_run_records_what_happened_up_to_the_stop_and_sends_nothing_after(stubs, tiny_model_dir, tmp_path,
                                                                                     clean_stop, capsys):
    answered = []

    def respond(path, body):
        if "logprobs" in body:  # the identity probe
            return ok_answer(body, "1")
        time.sleep(0.05)
        answered.append(1)
        if len(answered) == 10:
            interrupt.request_stop()  # as SIGINT would, at the 10th answer
        return ok_answer(body, "12345")

    s = stubs(respond=respond)
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=s.url, concurrency=2),
                     run=RunConfig(tasks=["tiny_passkey"], output_dir=str(tmp_path), progress=False))
    with pytest.raises(interrupt.Interrupted):
        run_eval(cfg)
    sent_by_then = len(s.completions())
    time.sleep(1.0)
    assert len(s.completions()) == sent_by_then, "a request was sent after the run ended"
    rec = load_run(next(tmp_path.glob("2*")))
    assert rec.status == "interrupted" and rec.wall_time_s is not None and rec.wall_time_s > 0
    req = rec.requests
    assert req["sent"] == sent_by_then  # the record knows every request the server got (the probe aside)
    assert 10 <= req["sent"] <= 12  # the 10th answer stopped it; the 2 in flight were sent before the stop
    assert req["answered"] >= 9 and req["cached"] == 0 and req["total"] == req["answered"] + req["failed"]
    err = capsys.readouterr().err
    assert "SIGINT received: no request is sent from now on" in err
    assert f"requests: {req['sent']} sent (the last" in err and "none after it" in err
    assert "run.json written: status interrupted" in err
    rerun = load_run(run_eval(EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=s.url),
                                         run=RunConfig(tasks=["tiny_passkey"], output_dir=str(tmp_path),
                                                       progress=False))))
    assert rerun.requests["cached"] == req["answered"] and rerun.requests["sent"] == 30 - req["answered"]


STUBBORN_TREE = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "print('ready', flush=True); time.sleep(600)"], stdout=sys.stdout)
time.sleep(600)
"""


def test_a_server_stop_returns_only_once_every_process_of_its_tree_is_gone(tmp_path, clean_stop, capsys):
    """A tree whose processes all ignore SIGTERM (as a wedged engine would): the stop waits its
    grace, kills, and returns only when none is left; its log says so."""
    import subprocess
    import sys

    import psutil

    from harness.backends.serve import ServerConfig, VLLMServer

    server = VLLMServer(ServerConfig(model=str(tmp_path)), log_path=tmp_path / "server.log")
    server.proc = subprocess.Popen([sys.executable, "-c", STUBBORN_TREE], stdout=subprocess.PIPE, text=True,
                                   start_new_session=True)
    assert server.proc.stdout.readline().strip() == "ready"
    pids = server.pids()
    assert len(pids) == 2
    interrupt.request_stop()  # so that the stop's log is written
    t0 = time.monotonic()
    server.stop(grace_s=0.5)
    assert time.monotonic() - t0 < 6
    assert not [p for p in pids if psutil.pid_exists(p)], "a process of the tree outlived the stop"
    err = capsys.readouterr().err
    assert "2 still there after" in err and "SIGKILL" in err
    assert "all 2 processes gone" in err


DRAINING_SERVER = """
import signal, sys, time
log = open(sys.argv[1], "a")
def on_term(*_):  # as vLLM's API server does: the engine stops, then uvicorn waits for open connections
    log.write("INFO:     Waiting for connections to close. (CTRL+C to force quit)\\n")
    log.flush()
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(600)
"""


def test_a_server_waiting_for_abandoned_connections_is_not_waited_for(tmp_path, clean_stop, capsys):
    """A stopped run abandons its requests in flight; vLLM's HTTP server would wait for those
    connections to close until the grace ran out. The stop kills it as soon as it says so."""
    import subprocess
    import sys

    import psutil

    from harness.backends.serve import ServerConfig, VLLMServer

    log = tmp_path / "server.log"
    server = VLLMServer(ServerConfig(model=str(tmp_path)), log_path=log)
    server.proc = subprocess.Popen([sys.executable, "-c", DRAINING_SERVER, str(log)], stdout=subprocess.PIPE, text=True,
                                   start_new_session=True)
    assert server.proc.stdout.readline().strip() == "ready"
    pid = server.proc.pid
    interrupt.request_stop()
    t0 = time.monotonic()
    server.stop(grace_s=5.0)
    assert time.monotonic() - t0 < 2.5, "the stop waited out the grace"
    assert not psutil.pid_exists(pid)
    assert "waits for the connections of abandoned requests: SIGKILL" in capsys.readouterr().err
