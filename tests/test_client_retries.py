"""The server client's retry and back-off rules against a stub HTTP server (no vLLM needed):
429/5xx are retried with back-off, other 4xx are not, refused connections fail fast, and every
failure becomes a per-request error while the other requests finish."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lm_eval.api.instance import Instance

from harness.backends.lm import ServerLM, TaskSpec


class Stub:
    """An OpenAI-compatible completions endpoint answering from a script of status codes."""

    def __init__(self, script: list[int]):
        self.script = list(script)
        self.hits = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # /health
                self.send_response(200)
                self.end_headers()

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.hits += 1
                status = stub.script.pop(0) if stub.script else 200
                payload = ({"choices": [{"text": f"ok:{body['prompt'][-3:]}", "finish_reason": "stop"}],
                            "usage": {"completion_tokens": 2}} if status == 200 else {"error": "scripted"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def make(script):
        made.append(Stub(script))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _client(url, tokenizer, **kw) -> ServerLM:
    return ServerLM(url, "m", tokenizer, 256, task_specs={"t": TaskSpec(endpoint="completion")},
                    concurrency=1, backoff_s=0.01, progress=False, **kw)


def _requests(n: int) -> list[Instance]:
    return [Instance(request_type="generate_until", doc={}, arguments=(f"prompt {i:03d}", {"max_gen_toks": 4}), idx=0,
                     metadata=("t", i, 1)) for i in range(n)]


def test_429_and_503_are_retried_until_an_answer(stub, tiny_tokenizer):
    s = stub([429, 503])
    lm = _client(s.url, tiny_tokenizer, max_retries=4)
    assert lm.generate_until(_requests(1)) == ["ok:000"]
    (rec,) = lm.records
    assert rec.error is None and rec.attempts == 3 and s.hits == 3
    assert rec.finish_reason == "stop" and rec.completion_tokens == 2


def test_a_400_is_not_retried_and_the_run_goes_on(stub, tiny_tokenizer):
    s = stub([400])
    lm = _client(s.url, tiny_tokenizer, max_retries=4)
    assert lm.generate_until(_requests(2)) == ["", "ok:001"]
    bad, good = sorted(lm.records, key=lambda r: r.doc_id)
    assert bad.attempts == 1 and bad.error.startswith("HTTP 400")
    assert good.error is None and s.hits == 2


def test_retries_run_out_into_a_per_request_error(stub, tiny_tokenizer):
    s = stub([503] * 10)
    lm = _client(s.url, tiny_tokenizer, max_retries=2)
    assert lm.generate_until(_requests(1)) == [""]
    (rec,) = lm.records
    assert rec.attempts == 3 and rec.error.startswith("HTTP 503") and s.hits == 3


def test_a_refused_connection_fails_fast_for_every_request(tiny_tokenizer):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lm = _client(f"http://127.0.0.1:{port}", tiny_tokenizer, max_retries=6)
    t0 = time.monotonic()
    assert lm.generate_until(_requests(5)) == [""] * 5
    assert time.monotonic() - t0 < 5.0  # six retries with back-off each would take far longer
    assert all(r.error for r in lm.records)
    assert sum(r.attempts for r in lm.records) <= 3  # the first failure marks the server down
