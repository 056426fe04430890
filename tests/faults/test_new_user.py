"""What a new user broke (issue: fake and stale results, slow failures, Ctrl-C), through the real
CLI and `run_eval`, against the tiny model's files and a stub OpenAI server (tests/stub_openai.py)
so that no vLLM server has to start. Each case fails on the code before the fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from harness.errors import IncompleteRunError, UserError
from harness.records.io import load_run, lock_run_dir
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from longact.cli import main
from tests.faults.test_interrupts import WITHIN_S, as_in_a_background_job
from tests.stub_openai import ok_answer

ROOT = Path(__file__).resolve().parents[2]
# A mistake is refused within 10 s, the user-facing promise. The bound sits far above a refusal's
# time on a busy machine (0.01-0.14 s with a load average of 8-9 on 2 cores) and far below what it
# guards against: the model loaders' retries once took 54 s before the same mistake surfaced.
REFUSED_WITHIN_S = 10.0


def _cli(capsys, *argv):
    t0 = time.monotonic()
    code = main(list(argv))
    return code, capsys.readouterr().err, time.monotonic() - t0


# Input mistakes: one clear line, exit 2, no server start, no run directory -----------------------

@pytest.mark.parametrize("flags,needle", [
    (["--max-retries", "-1"], "--max-retries must be >= 0"),
    (["--max-model-len", "0"], "--max-model-len must be >= 1"),
    (["--max-model-len", "-5"], "--max-model-len must be >= 1"),
    (["--samples-per-item", "0"], "--samples-per-item must be >= 1"),
    (["--concurrency", "0"], "--concurrency must be >= 1"),
    (["--request-timeout", "0"], "--request-timeout must be > 0"),
    (["--run-id", "../.."], "--run-id '../..'"),
    (["--run-id", "a/b"], "--run-id 'a/b'"),
    (["--metadata", '{"data_pth": "x"}'], "unknown key(s) data_pth"),
    (["--tasks", "longbench_v2", "--metadata", '{"data_path": "/nonexistent/data.json"}'], "/nonexistent/data.json does not exist"),
    (["--base-url", "http://127.0.0.1:9"], "--model and --base-url name two models"),
])
def test_bad_flags_fail_before_any_server(flags, needle, capsys, tiny_model_dir, tmp_path):
    code, err, seconds = _cli(capsys, "eval", "--model", str(tiny_model_dir), "--tasks", "tiny",
                              "--output-dir", str(tmp_path / "out"), *flags)
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert seconds < 60  # a server start alone takes one to several minutes


def test_unknown_metadata_names_the_keys_the_tasks_read(capsys, tiny_model_dir, tmp_path):
    code, err, _ = _cli(capsys, "eval", "--model", str(tiny_model_dir), "--tasks", "ruler",
                        "--metadata", '{"length": [1024]}', "--output-dir", str(tmp_path))
    assert code == 2 and "unknown key(s) length" in err and "lengths" in err and "essay_path" in err


def test_a_mistyped_relative_path_is_a_missing_path_not_a_hub_id(capsys, tmp_path, monkeypatch):
    (tmp_path / "models" / "tiny-qwen3").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    code, err, seconds = _cli(capsys, "eval", "--model", "models/tiny-qwen", "--tasks", "tiny")
    assert code == 2 and "model path models/tiny-qwen does not exist" in err and seconds < 30


def test_a_directory_without_weights_is_refused(capsys, tiny_model_dir, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text((Path(tiny_model_dir) / "config.json").read_text())
    code, err, _ = _cli(capsys, "eval", "--model", str(tmp_path / "m"), "--tasks", "tiny", "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "no weights" in err


def test_a_run_directory_is_locked_while_a_run_writes_it(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    held = lock_run_dir(run_dir)
    try:
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            lock_run_dir(run_dir)
    finally:
        held.close()
    lock_run_dir(run_dir).close()  # released with its handle (and by the OS when a run dies)


# Results that must not be wrong or stale ----------------------------------------------------------

def _cfg(url, tok, out, **run):
    return EvalConfig(tokenizer=str(tok), client=ClientConfig(base_url=url, max_retries=1),
                      run=RunConfig(tasks=["tiny_passkey"], output_dir=str(out), progress=False, **run))


def test_remote_cache_is_keyed_by_what_is_served_not_its_name(stubs, tiny_model_dir, tmp_path):
    """Two checkpoints served under one name: the second must not get the first one's answers."""
    first = stubs(respond=lambda path, body: ok_answer(body, "12345"))
    rec = load_run(run_eval(_cfg(first.url, tiny_model_dir, tmp_path)))
    assert rec.model.served_fingerprint and rec.requests["sent"] == 30

    def other_weights(path, body):  # same name, other weights: the probe's log-probs differ
        status, payload = ok_answer(body, "99999")
        if "logprobs" in body:
            payload["choices"][0]["logprobs"]["token_logprobs"] = [-3.0, -0.01]
        return status, payload

    second = stubs(respond=other_weights)
    rec2 = load_run(run_eval(_cfg(second.url, tiny_model_dir, tmp_path)))
    assert rec2.requests["cached"] == 0 and rec2.requests["sent"] == 30
    assert rec2.model.served_fingerprint != rec.model.served_fingerprint
    again = load_run(run_eval(_cfg(second.url, tiny_model_dir, tmp_path)))
    assert again.requests["cached"] == 30  # the same weights still resume


def test_no_cache_when_the_served_weights_cannot_be_identified(stubs, tiny_model_dir, tmp_path, capsys):
    def no_logprobs(path, body):
        status, payload = ok_answer(body, "1")
        payload["choices"][0].pop("logprobs", None)
        return status, payload

    s = stubs(respond=no_logprobs)
    for _ in range(2):
        rec = load_run(run_eval(_cfg(s.url, tiny_model_dir, tmp_path)))
        assert rec.requests["cached"] == 0 and rec.requests["sent"] == 30
    assert "request cache off" in capsys.readouterr().err


def test_the_tokenizer_hash_is_of_the_tokenizer_used(stubs, tiny_model_dir, tiny_tokenizer, tmp_path):
    from tasks.tokens import tokenizer_identity

    s = stubs()
    rec = load_run(run_eval(_cfg(s.url, tiny_model_dir, tmp_path)))
    assert rec.model.tokenizer_sha256 == tokenizer_identity(tiny_tokenizer) is not None
    assert rec.model.path == "stub-model" and rec.model.weights_sha256 is None


def test_rejected_requests_are_recorded_and_the_message_says_a_rerun_will_not_help(stubs, tiny_model_dir, tmp_path):
    """400s become per-sample errors, the rest finishes and is cached; the message does not
    promise that rerunning helps; a rerun re-sends exactly the failed ones."""
    def respond(path, body):
        if "logprobs" not in body and zlib.crc32(body["messages"][-1]["content"].encode()) % 3 == 0:
            return 400, {"error": "This model's maximum context length is 2048 tokens"}
        return ok_answer(body, "1")

    s = stubs(respond=respond)
    with pytest.raises(IncompleteRunError, match="would be rejected again") as e:
        run_eval(_cfg(s.url, tiny_model_dir, tmp_path))
    assert "retries" not in str(e.value)
    rec = load_run(next(tmp_path.glob("2*")))
    failed = rec.tasks["tiny_passkey"].n_errors
    assert rec.status == "incomplete" and 0 < failed < 30 and "HTTP 400" in rec.errors[0]
    before = len(s.completions())
    with pytest.raises(IncompleteRunError):
        run_eval(_cfg(s.url, tiny_model_dir, tmp_path))
    assert len(s.completions()) - before == failed  # only the failed ones again, each once (no retry)


def test_a_window_larger_than_the_servers_is_refused_before_sending(stubs, tiny_model_dir, tmp_path):
    s = stubs(max_model_len=2048)
    cfg = _cfg(s.url, tiny_model_dir, tmp_path)
    cfg.max_model_len = 4096
    with pytest.raises(UserError, match="exceeds the 2048-token window"):
        run_eval(cfg)
    assert not s.completions()


# Ctrl-C ----------------------------------------------------------------------------------------

def test_ctrl_c_stops_sending_and_exits_within_seconds(stubs, tiny_model_dir, tmp_path):
    """A hung server: each answer would take a minute. SIGINT must cancel the queue, keep what
    arrived and exit promptly, not wait out the in-flight requests. The process starts with SIGINT
    ignored, as under CI (a background job of a script): the failure seen there, exit only after
    every hung request, came from that inheritance (tests/faults/test_interrupts.py has each phase)."""
    def hang(path, body):
        if "logprobs" in body:
            return ok_answer(body)
        time.sleep(60)
        return ok_answer(body)

    s = stubs(respond=hang)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "longact", "eval", "--base-url", s.url, "--tokenizer", str(tiny_model_dir),
                             "--tasks", "tiny_passkey", "--concurrency", "2", "--quiet", "--output-dir", str(tmp_path)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_in_a_background_job)
    deadline = time.monotonic() + 120
    while len(s.completions()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(s.completions()) == 2, "the run never started sending"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < WITHIN_S, err  # the promise: stopped within 10 s of Ctrl-C
    assert proc.returncode == 130, err
    assert len(s.completions()) == 2  # nothing queued was sent after the signal
    rec = json.loads(next(tmp_path.glob("2*/run.json")).read_text())
    assert rec["status"] == "interrupted"
    assert rec["requests"]["sent"] == 2 and rec["wall_time_s"] is not None  # what happened up to the stop
    # the log says what happened between the signal and the exit, each line with its time since the signal
    stop_log = [line for line in err.splitlines() if line.startswith("[stop ")]
    assert [next(e for e in ("SIGINT received", "requests: 2 sent", "run.json written", "exit 130") if e in line)
            for line in stop_log] == ["SIGINT received", "requests: 2 sent", "run.json written", "exit 130"], err
    assert "none after it" in stop_log[1] and "2 in flight abandoned" in stop_log[1]


def test_a_tokenizer_unlike_the_models_is_refused_without_a_server(capsys, tiny_model_dir, tmp_path):
    from longact.tiny.model import TinyModelSpec, build_tokenizer

    build_tokenizer(TinyModelSpec(vocab_size=400)).save_pretrained(tmp_path / "other-tok")
    code, err, seconds = _cli(capsys, "eval", "--model", str(tiny_model_dir), "--tokenizer", str(tmp_path / "other-tok"),
                              "--tasks", "tiny", "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "does not tokenize like" in err and seconds < 60


# A chat-template switch for base models (HELMET's use_chat_template) ----------------------------

def test_chat_template_off_sends_chat_tasks_verbatim_and_keeps_its_own_cache(stubs, tiny_model_dir, tmp_path):
    s = stubs()
    rec = load_run(run_eval(_cfg(s.url, tiny_model_dir, tmp_path)))
    assert rec.tasks["tiny_passkey"].endpoint == "chat" and rec.chat_template == "task"
    assert all("messages" in b for b in s.completions())
    n = len(s.completions())
    cfg = _cfg(s.url, tiny_model_dir, tmp_path)
    cfg.run.chat_template = "off"
    rec = load_run(run_eval(cfg))
    assert rec.tasks["tiny_passkey"].endpoint == "completion" and rec.chat_template == "off"
    sent = s.completions()[n:]
    assert len(sent) == 30 and rec.requests["cached"] == 0  # a chat answer is not a completion answer
    assert all("prompt" in b and "<|im_start|>" not in b["prompt"] for b in sent)


@pytest.mark.parametrize("flags,needle", [
    (["--tasks", "infinitebench_passkey", "--chat-template", "off"], "infinitebench_passkey send messages before the user turn"),
    (["--mode", "reasoning", "--chat-template", "off"], "needs the chat template"),
    (["--tasks", ""], "--tasks is empty"),
    (["--limit", "0"], "--limit must be > 0"),
])
def test_chat_template_and_task_list_mistakes(flags, needle, capsys, tiny_model_dir, tmp_path):
    code, err, _ = _cli(capsys, "eval", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path), *flags)
    assert code == 2 and needle in err, err


def test_a_full_disk_names_the_cache_file(stubs, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import sqlite3

    from sqlitedict import SqliteDict

    def full(self, key, value):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SqliteDict, "__setitem__", full)
    s = stubs()
    code, err, _ = _cli(capsys, "eval", "--base-url", s.url, "--tokenizer", str(tiny_model_dir), "--tasks", "tiny_passkey",
                        "--output-dir", str(tmp_path), "--quiet")
    assert code == 2 and "cannot write the request cache" in err and str(tmp_path / ".cache") in err, err
    assert "Traceback" not in err
    assert load_run(next(tmp_path.glob("2*"))).status == "failed"


def test_show_into_a_closed_pipe_ends_quietly(stubs, tiny_model_dir, tmp_path, monkeypatch):
    """`longact show RUN | head -1`: once the reader has gone, writing raises BrokenPipeError."""
    s = stubs()
    run_dir = run_eval(_cfg(s.url, tiny_model_dir, tmp_path))
    read, write = os.pipe()
    os.close(read)
    out = os.fdopen(write, "w", buffering=1)  # line-buffered, as a terminal or `head` reads it
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["show", str(run_dir)]) == 0


def test_quiet_prints_no_progress_bars(stubs, tiny_model_dir, tmp_path, capsys):
    """--quiet: warnings, errors and the final table only; lm-eval's per-task request-building bars
    (0/30 ... 30/30) once came through, since tqdm reads TQDM_DISABLE only when it is imported."""
    s = stubs()
    code, err, _ = _cli(capsys, "eval", "--base-url", s.url, "--tokenizer", str(tiny_model_dir), "--tasks", "tiny_passkey,tiny_kv",
                        "--output-dir", str(tmp_path), "--quiet", "--no-cache")
    assert code == 0
    assert "%|" not in err and "it/s" not in err, err
    code, err, _ = _cli(capsys, "eval", "--base-url", s.url, "--tokenizer", str(tiny_model_dir), "--tasks", "tiny_passkey",
                        "--output-dir", str(tmp_path), "--no-cache")
    assert code == 0 and "%|" in err  # without --quiet the bars are there: the check above can fail


@pytest.mark.parametrize("offline", [True, False])
def test_a_hub_shaped_missing_path_fails_at_once_when_the_hub_is_out_of_reach(offline, capsys, tmp_path, monkeypatch):
    """`models/does-not-exist-xyz` where `models/` does not exist reads as a hub id; offline, the
    loaders retried for 54 s before failing. Now one line, within seconds, with both readings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # online mode, but nothing answers (this machine cannot reach the hub either)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    code, err, seconds = _cli(capsys, "eval", "--model", "models/does-not-exist-xyz", "--tasks", "tiny")
    assert code == 2 and seconds < REFUSED_WITHIN_S, (seconds, err)
    assert "no such local path" in err and "hub id" in err and "fix the path" in err and "download it" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
