"""One run, several servers (`--base-url A,B`), against stub OpenAI servers (no vLLM): requests
spread over the servers, one cache whatever their number, servers serving other weights refused
by name, and a server that dies mid-run taken out with nothing lost and nothing answered twice."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from harness.backends.pool import Endpoint, EndpointPool
from harness.errors import IncompleteRunError, UserError
from harness.records.io import load_run
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from tests.stub_openai import ok_answer


def _cfg(urls, tok, out, concurrency=2):
    return EvalConfig(tokenizer=str(tok), client=ClientConfig(base_url=",".join(urls), max_retries=1, concurrency=concurrency),
                      run=RunConfig(tasks=["tiny_passkey"], output_dir=str(out), progress=False))


def slow(seconds=0.02, text="1"):
    def respond(path, body):
        if "logprobs" not in body:
            time.sleep(seconds)
        return ok_answer(body, text)
    return respond


def dies_after(n: int, victims: list, latency: float):
    """A respond function: answers n completions (after `latency` each), then kills every server in
    `victims` and drops the request, as the requests in flight on a crashed server are dropped."""
    lock, served = threading.Lock(), [0]

    def respond(path, body):
        if "logprobs" in body:
            return ok_answer(body, "1")
        time.sleep(latency)
        with lock:
            served[0] += 1
            if served[0] > n:
                for s in victims:
                    s.kill()
                return None
        return ok_answer(body, "1")
    return respond


def test_the_pool_sends_to_the_least_busy_live_server():
    a, b = Endpoint("http://a", "m"), Endpoint("http://b", "m")
    pool = EndpointPool([a, b], per_server=2)
    got = [pool.acquire() for _ in range(4)]
    assert [e.root for e in got] == ["http://a", "http://b", "http://a", "http://b"]
    assert pool.acquire(stopped=lambda: True) is None  # full, and the run stopped while waiting
    pool.release(b, answered=True)
    assert pool.acquire() is b and b.answered == 1
    pool.take_out(a, "gone")
    pool.release(a, answered=False)
    pool.release(a, answered=False)
    assert pool.live() == [b]
    pool.take_out(b, "gone too")
    assert pool.acquire() is None  # nobody left: at once, no waiting


def test_requests_spread_over_servers_and_one_cache_serves_any_number(stubs, tiny_model_dir, tmp_path):
    a, b = stubs(respond=slow()), stubs(respond=slow())
    rec = load_run(run_eval(_cfg([a.url, b.url], tiny_model_dir, tmp_path)))
    assert rec.status == "complete" and rec.requests["sent"] == 30
    assert len(a.answered_completions()) > 5 and len(b.answered_completions()) > 5
    servers = {s.url: s for s in rec.serving.servers}
    assert servers[a.url].answered == len(a.answered_completions())
    assert servers[b.url].answered == len(b.answered_completions())
    assert servers[a.url].answered + servers[b.url].answered == 30
    assert servers[a.url].fingerprint == servers[b.url].fingerprint == rec.model.served_fingerprint
    assert rec.serving.base_url == f"{a.url},{b.url}" and not any(s.taken_out for s in servers.values())
    # one server or two: the same served identity, so the same cache
    again = load_run(run_eval(_cfg([b.url], tiny_model_dir, tmp_path)))
    assert again.requests["cached"] == 30 and again.requests["sent"] == 0


def test_a_server_with_other_weights_is_refused_by_name_before_any_request(stubs, tiny_model_dir, tmp_path):
    def other_weights(path, body):
        status, payload = ok_answer(body, "9")
        if "logprobs" in body:
            payload["choices"][0]["logprobs"]["token_logprobs"] = [-3.0, -0.01]
        return status, payload

    a, b, c = stubs(), stubs(respond=other_weights), stubs()
    with pytest.raises(UserError, match=f"{b.url} serve\\(s\\) other weights than {a.url}, {c.url}"):
        run_eval(_cfg([a.url, b.url, c.url], tiny_model_dir, tmp_path))
    assert not (a.completions() or b.completions() or c.completions())


def test_a_server_that_dies_mid_run_is_taken_out_and_nothing_is_lost_or_answered_twice(stubs, tiny_model_dir, tmp_path):
    victims = []
    dying = stubs(respond=dies_after(5, victims, latency=0.05))
    victims.append(dying)
    healthy = stubs(respond=slow())
    rec = load_run(run_eval(_cfg([dying.url, healthy.url], tiny_model_dir, tmp_path)))
    assert rec.status == "complete" and rec.tasks["tiny_passkey"].n_errors == 0
    servers = {s.url: s for s in rec.serving.servers}
    assert servers[dying.url].taken_out and servers[healthy.url].taken_out is None
    answered_by_dead = [b["messages"][-1]["content"] for b in dying.answered_completions()]
    answered_by_live = [b["messages"][-1]["content"] for b in healthy.answered_completions()]
    # up to 5 (an answer on its way when the server died is lost like the rest in flight)
    assert 1 <= len(answered_by_dead) == servers[dying.url].answered <= 5
    assert len(answered_by_dead) + len(answered_by_live) == 30
    sent_to_live = [b["messages"][-1]["content"] for b in healthy.completions()]
    assert not set(answered_by_dead) & set(sent_to_live)  # an answer is never asked for twice


def test_when_every_server_is_gone_the_run_is_incomplete_and_a_rerun_sends_only_the_missing(stubs, tiny_model_dir, tmp_path):
    servers = []
    respond = dies_after(8, servers, latency=0.02)  # one count for both: 8 answers between them
    servers += [stubs(respond=respond), stubs(respond=respond)]
    started = time.monotonic()
    with pytest.raises(IncompleteRunError):
        run_eval(_cfg([s.url for s in servers], tiny_model_dir, tmp_path))
    assert time.monotonic() - started < 60  # the rest failed fast, not through retries each
    answered = sum(len(s.answered_completions()) for s in servers)  # up to 8: some died on their way
    rec = load_run(next(tmp_path.glob("2*")))
    assert 0 < answered <= 8
    assert rec.status == "incomplete" and rec.tasks["tiny_passkey"].n_errors == 30 - answered
    fresh = stubs(respond=slow(0.0))
    again = load_run(run_eval(_cfg([fresh.url], tiny_model_dir, tmp_path)))
    assert again.status == "complete" and again.requests["cached"] == answered
    assert len(fresh.completions()) == 30 - answered


def test_devices_are_split_between_started_servers():
    from harness.backends.serve import split_devices

    assert split_devices([], 3, 2) == [None, None, None]  # CPU: nothing to pin
    assert split_devices(["0", "1", "2", "3"], 2, 2) == ["0,1", "2,3"]
    assert split_devices(["4", "5", "6", "7"], 4, 1) == ["4", "5", "6", "7"]
    with pytest.raises(UserError, match="needs 4 GPUs; 3 are visible"):
        split_devices(["0", "1", "2"], 2, 2)


def test_cpu_servers_get_their_own_cores():
    from harness.backends.serve import split_cpus

    assert split_cpus(1, [0, 1]) == [None]  # one server: vLLM's own binding
    assert split_cpus(2, [0, 1]) == ["0", "1"]
    assert split_cpus(2, [0, 1, 2, 3, 4]) == ["0,1,2", "3,4"]
    assert split_cpus(3, [4, 6]) == ["4", "6", "4"]  # more servers than cores: shared round-robin


@pytest.mark.parametrize("flags,needle", [
    (["--servers", "0"], "--servers must be >= 1"),
    (["--data-parallel-size", "0"], "--data-parallel-size must be >= 1"),
    (["--servers", "2", "--port", "8000"], "drop --port"),
])
def test_server_count_mistakes_fail_before_any_server(flags, needle, tiny_model_dir, tmp_path, capsys):
    from longact.cli import main

    code = main(["eval", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path), *flags])
    assert code == 2 and needle in capsys.readouterr().err


@pytest.mark.server
@pytest.mark.slow
def test_two_started_servers_give_the_one_server_results_and_both_stop(vllm_server, tiny_model_dir, tmp_path):
    """`--servers 2` on the CPU: two real vLLM servers share the requests; the samples equal those
    of one server (greedy), and no server process outlives the run."""
    import psutil

    from tests.conftest import SERVER_WINDOW

    one = load_run(run_eval(EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url),
                                       run=RunConfig(tasks=["tiny_passkey", "tiny_kv"], output_dir=str(tmp_path / "one"),
                                                     use_cache=False, progress=False))))
    cfg = EvalConfig(model=str(tiny_model_dir), max_model_len=SERVER_WINDOW,
                     run=RunConfig(tasks=["tiny_passkey", "tiny_kv"], output_dir=str(tmp_path / "two"), use_cache=False,
                                   progress=False))
    cfg.serve.servers = 2
    run_dir = run_eval(cfg)
    two = load_run(run_dir)
    assert two.status == "complete" and len(two.serving.servers) == 2
    assert all(s.answered > 0 for s in two.serving.servers) and sum(s.answered for s in two.serving.servers) == 60
    bound = [re.findall(r"core ids=(\[[\d, ]+\])", (run_dir / f"server-{i}.log").read_text()) for i in range(2)]
    assert bound[0] and bound[1] and bound[0] != bound[1], bound  # each worker on its own core
    for task in ("tiny_passkey", "tiny_kv"):
        rows = [[json.loads(line) for line in (d / f"samples_{task}.jsonl").read_text().splitlines()]
                for d in (tmp_path / "one" / one.run_id, run_dir)]
        assert rows[0] == rows[1]
    session_server = set(vllm_server.pids())
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in session_server and "vllm" in " ".join(p.cmdline())]
    assert not left
