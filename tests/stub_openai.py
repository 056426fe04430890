"""A stub OpenAI-compatible server for tests of the client's failure handling (no vLLM).

`respond(path, body)` decides each POST's answer: (status, JSON-able payload or raw bytes). The
default answers every completion with a short text; `respond` returning None drops the connection
without an answer, and `kill()` makes the server die: no new connection, no answer in flight. It lists `model` under /v1/models with
`max_model_len`, has /health and /version, and no /tokenize (as servers other than vLLM).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def ok_answer(body: dict, text: str = "ok") -> tuple[int, dict]:
    choice = ({"message": {"role": "assistant", "content": text}} if "messages" in body else
              {"text": text, "logprobs": {"token_logprobs": [-0.5, -1.25]}})
    return 200, {"choices": [{**choice, "finish_reason": "stop"}], "usage": {"completion_tokens": 2}}


class StubServer:
    def __init__(self, model: str = "stub-model", max_model_len: int = 2048, respond=None):
        self.model, self.max_model_len = model, max_model_len
        self.respond = respond or (lambda path, body: ok_answer(body))
        self.posts: list[tuple[str, dict]] = []
        self.answered: list[tuple[str, dict]] = []
        self.dead = False
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, payload) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def do_GET(self):
                if stub.dead:  # kept-alive connections outlive the listener: a dead server answers none
                    self._drop()
                    return
                routes = {"/health": {}, "/version": {"version": "stub"},
                          "/v1/models": {"data": [{"id": stub.model, "max_model_len": stub.max_model_len}]}}
                if self.path in routes:
                    self._send(200, routes[self.path])
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if stub.dead:
                    self._drop()
                    return
                if not self.path.startswith("/v1/"):
                    self._send(404, {"error": "not found"})
                    return
                with stub.lock:
                    stub.posts.append((self.path, body))
                try:
                    answer = stub.respond(self.path, body)
                    if answer is None or stub.dead:  # a server that died with the request in flight
                        self._drop()
                        return
                    self._send(*answer)
                    with stub.lock:
                        stub.answered.append((self.path, body))
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def completions(self) -> list[dict]:
        """Bodies of generation requests (the identity probe with `logprobs` excluded)."""
        with self.lock:
            return [b for p, b in self.posts if p.endswith("completions") and "logprobs" not in b]

    def answered_completions(self) -> list[dict]:
        with self.lock:
            return [b for p, b in self.answered if p.endswith("completions") and "logprobs" not in b]

    def kill(self) -> None:
        """Die as a crashed server does: answers in flight are never sent, connections are refused."""
        self.dead = True
        try:  # stop listening now: connections are refused at once, as by a crashed process
            self.server.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        threading.Thread(target=self.close, daemon=True).start()  # a handler may call this: not on its thread

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.server.shutdown()
        self.server.server_close()
