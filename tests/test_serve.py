"""The vLLM server lifecycle on the real tiny model: start, health, request, stop, no orphans."""

import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from harness.backends.serve import ServerConfig, ServerStartError, VLLMServer, free_port, server_info
from harness.errors import UserError
from tests.conftest import alive
from tests.faults.test_interrupts import WITHIN_S, as_in_a_background_job

pytestmark = pytest.mark.server


def test_a_started_server_is_healthy_on_loopback_and_answers(vllm_server):
    """The session's server (a `VLLMServer` like any other): health, loopback, its window, a real
    completion, and an engine-core child. That `stop()` leaves no process behind is checked where
    servers are stopped: tests/test_multi_server.py (a managed run's servers) and the Ctrl-C test
    below."""
    from tests.conftest import SERVER_WINDOW

    assert requests.get(f"{vllm_server.base_url}/health", timeout=5).status_code == 200
    assert vllm_server.base_url.startswith("http://127.0.0.1:")
    info = server_info(vllm_server.base_url)
    assert info["max_model_len"] == SERVER_WINDOW and info["server_version"]
    r = requests.post(f"{vllm_server.base_url}/v1/completions", timeout=60,
                      json={"model": info["model"], "prompt": "The pass key is", "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    assert len(vllm_server.pids()) >= 2, "vLLM runs an engine-core child next to the API server"
    assert vllm_server.log_path.stat().st_size > 0


@pytest.mark.slow
def test_ctrl_c_during_eval_stops_server_and_children(tiny_model_dir, tmp_path):
    """SIGINT to `longact eval` while the server is up: the process exits and no vLLM survives."""
    cmd = [sys.executable, "-m", "longact.cli", "eval", "--model", str(tiny_model_dir), "--tasks", "tiny",
           "--max-model-len", "1024", "--output-dir", str(tmp_path), "--quiet", "--no-cache"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_in_a_background_job)  # as under CI: SIGINT inherited ignored
    me = psutil.Process(proc.pid)
    deadline = time.time() + 300
    server_pids = []
    while time.time() < deadline:
        kids = me.children(recursive=True)
        logs = list(tmp_path.glob("*/server.log"))
        if kids and logs and "Application startup complete" in logs[0].read_text(errors="replace"):
            server_pids = [k.pid for k in kids]
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    assert server_pids, "server never came up"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert time.monotonic() - t0 < WITHIN_S, out[-2000:]  # the promise: stopped within 10 s of Ctrl-C
    # The harness has exited, its servers SIGKILLed; the kernel may still be tearing them down.
    deadline = time.monotonic() + 30
    while alive(server_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(server_pids) == [], out[-2000:]
    run_json = next(tmp_path.glob("*/run.json"))
    assert '"status": "interrupted"' in run_json.read_text(), "an interrupted run must say so, never complete"


@pytest.mark.slow
def test_server_that_fails_to_start_shows_its_log(tiny_model_dir, tmp_path):
    cfg = ServerConfig(model=str(tiny_model_dir), max_model_len=1024, extra_args=["--no-such-flag"], startup_timeout_s=120)
    with pytest.raises(ServerStartError, match="(?s)exited with code .*no-such-flag"):
        VLLMServer(cfg, log_path=tmp_path / "s.log").start()


def test_port_in_use_is_a_clear_error(tiny_model_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use"):
            VLLMServer(ServerConfig(model=str(tiny_model_dir), port=port), log_path=tmp_path / "s.log").start()


def test_not_a_model_dir(tmp_path):
    with pytest.raises(UserError, match="not a model directory"):
        VLLMServer(ServerConfig(model=str(tmp_path)), log_path=tmp_path / "s.log").start()


def test_unreachable_base_url_is_a_clear_error():
    port = free_port()
    with pytest.raises(UserError, match=f"cannot reach the server at http://127.0.0.1:{port}"):
        server_info(f"http://127.0.0.1:{port}")


def test_server_binds_loopback_by_default():
    cmd = ServerConfig(model="m").command(8000)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "--trust-remote-code" not in cmd
