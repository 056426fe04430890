"""The server client's retry and back-off rules against a stub HTTP server (no vLLM needed):
429/5xx are retried with back-off, other 4xx are not, refused connections fail fast, a 200 that
is not an answer is an error, and every failure stays a per-request error while the rest finish."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from lm_eval.api.instance import Instance

from harness.backends.lm import ServerLM, TaskSpec
from tests.stub_openai import StubServer, ok_answer


@pytest.fixture
def stub():
    made = []

    def make(script=(), respond=None):
        codes = list(script)

        def scripted(path, body):
            if codes:
                return codes.pop(0), {"error": "scripted"}
            return ok_answer(body, "ok:" + body["prompt"][-3:])

        made.append(StubServer(respond=respond or scripted))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _client(url, tokenizer, **kw) -> ServerLM:
    return ServerLM(url, "m", tokenizer, 256, task_specs={"t": TaskSpec(endpoint="completion")},
                    concurrency=1, backoff_s=0.01, progress=False, **kw)


def until(condition, timeout_s: float = 60.0) -> None:
    """Wait for `condition()` (a generous deadline: the machine may be busy; it fails loudly)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {timeout_s:g} s"
        time.sleep(0.01)


def _requests(n: int) -> list[Instance]:
    return [Instance(request_type="generate_until", doc={}, arguments=(f"prompt {i:03d}", {"max_gen_toks": 4}), idx=0,
                     metadata=("t", i, 1)) for i in range(n)]


def test_429_and_503_are_retried_until_an_answer(stub, tiny_tokenizer):
    s = stub([429, 503])
    lm = _client(s.url, tiny_tokenizer, max_retries=4)
    assert lm.generate_until(_requests(1)) == ["ok:000"]
    (rec,) = lm.records
    assert rec.error is None and rec.attempts == 3 and len(s.posts) == 3
    assert rec.finish_reason == "stop" and rec.completion_tokens == 2


def test_a_400_is_not_retried_and_the_run_goes_on(stub, tiny_tokenizer):
    s = stub([400])
    lm = _client(s.url, tiny_tokenizer, max_retries=4)
    assert lm.generate_until(_requests(2)) == ["", "ok:001"]
    bad, good = sorted(lm.records, key=lambda r: r.doc_id)
    assert bad.attempts == 1 and bad.error.startswith("HTTP 400") and bad.status == 400
    assert good.error is None and len(s.posts) == 2


def test_retries_run_out_into_a_per_request_error(stub, tiny_tokenizer):
    s = stub([503] * 10)
    lm = _client(s.url, tiny_tokenizer, max_retries=2)
    assert lm.generate_until(_requests(1)) == [""]
    (rec,) = lm.records
    assert rec.attempts == 3 and rec.error.startswith("HTTP 503") and len(s.posts) == 3


def test_a_refused_connection_fails_fast_for_every_request(tiny_tokenizer):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # One back-off here is at least 30 s (60 s, jittered by 0.5-1.5): a run under that has retried
    # nothing, however busy the machine; refusing five connections takes well under a second.
    lm = ServerLM(f"http://127.0.0.1:{port}", "m", tiny_tokenizer, 256, task_specs={"t": TaskSpec(endpoint="completion")},
                  concurrency=1, backoff_s=60.0, max_retries=1, progress=False)
    t0 = time.monotonic()
    assert lm.generate_until(_requests(5)) == [""] * 5
    assert time.monotonic() - t0 < 30.0
    assert all(r.error for r in lm.records)
    assert sum(r.attempts for r in lm.records) <= 3  # the first failure marks the server down


@pytest.mark.parametrize("payload", [b"<html>proxy error</html>", {"choices": []}, {"object": "error"},
                                     {"choices": [{"text": None}]}])
def test_a_200_that_is_not_an_answer_is_a_request_error(payload, stub, tiny_tokenizer):
    calls = []

    def respond(path, body):
        calls.append(body)
        return (200, payload) if body["prompt"].endswith("000") else ok_answer(body, "fine")

    s = stub(respond=respond)
    lm = _client(s.url, tiny_tokenizer, max_retries=1)
    saved = []
    assert lm.generate_until(_requests(2), on_result=lambda i, text, rec: saved.append(i)) == ["", "fine"]
    bad = next(r for r in lm.records if r.doc_id == 0)
    assert bad.error.startswith("malformed answer") and bad.attempts == 2
    assert saved == [1]  # only the received answer reaches the cache


def test_an_answer_never_received_is_never_cached(stub, tiny_tokenizer):
    s = stub()
    lm = _client(s.url, tiny_tokenizer, max_retries=-1)  # the CLI refuses this; the client stays safe
    saved = []
    assert lm.generate_until(_requests(2), on_result=lambda i, text, rec: saved.append(i)) == ["", ""]
    assert all(r.error == "not sent" for r in lm.records) and not saved and not s.posts


def test_an_interrupt_while_an_answer_is_saved_stops_the_queue_and_keeps_what_arrived(stub, tiny_tokenizer, monkeypatch):
    """A KeyboardInterrupt raised while an answer is handed over (in the cache write) stops the
    queue, hands over the answers that had already arrived, and leaves no generator to be closed
    later: the dispatcher once yielded inside its exception handler ('generator ignored GeneratorExit')."""
    import gc
    import sys

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    s = stub()
    lm = ServerLM(s.url, "m", tiny_tokenizer, 256, task_specs={"t": TaskSpec(endpoint="completion")},
                  concurrency=2, progress=False)
    delivered = []

    def on_result(i, text, record):
        delivered.append(i)
        if len(delivered) == 1:
            # Another answer arrives meanwhile. The workers cannot send more while this hand-over
            # holds the client's lock, so wait for the server to have answered the other request
            # in flight, then give the client a moment to take it in (no event marks that).
            until(lambda: len(s.answered_completions()) >= 2)
            time.sleep(0.3)
            raise KeyboardInterrupt

    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        lm.generate_until(_requests(40), on_result=on_result)
    # the client's workers end once their request in flight is answered: then nothing more can go out
    until(lambda: not [t for t in threading.enumerate() if t not in before and t.name.endswith("(worker)")])
    # the queue stopped: beyond the answers handed over, at most the two requests in flight went out
    assert len(delivered) >= 2  # the answers that arrived during the first hand-over were handed over too
    assert len(s.completions()) <= len(delivered) + 2
    gc.collect()
    assert not unraisable, [u.exc_value for u in unraisable]
