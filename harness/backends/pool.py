"""Several servers that serve the same weights, as one place to send requests.

    pool = EndpointPool([Endpoint("http://a:8000", "m"), Endpoint("http://b:8000", "m")], per_server=8)
    ep = pool.acquire(stopped)          # the live server with the fewest requests outstanding
    ...                                 # POST to ep.root
    pool.release(ep, answered=True)

A request goes to the live server with the fewest outstanding requests, never more than
`per_server` at once on one server (`--concurrency` is per server). A server that stops answering
is taken out (`take_out`): requests waiting for a server then go to the others, and when none is
left `acquire` returns None at once, so the remaining requests fail fast instead of each waiting
through its retries. The same least-outstanding rule as vLLM's router and most load balancers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable


@dataclass
class Endpoint:
    root: str
    """Server root URL (`http://host:port`, no `/v1`)."""
    model: str
    """The name this server serves the model under (each server may name it differently)."""
    outstanding: int = 0
    sent: int = 0
    answered: int = 0
    out_reason: str | None = None
    """Why the server was taken out (None while it is in)."""


class EndpointPool:
    def __init__(self, endpoints: list[Endpoint], per_server: int):
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one server")
        self.endpoints = list(endpoints)
        self.per_server = max(1, int(per_server))
        self._cond = threading.Condition()

    def live(self) -> list[Endpoint]:
        with self._cond:
            return self._live()

    def _live(self) -> list[Endpoint]:  # the caller holds the lock
        return [e for e in self.endpoints if e.out_reason is None]

    def acquire(self, stopped: Callable[[], bool] = lambda: False, poll_s: float = 0.2) -> Endpoint | None:
        """The live server with the fewest outstanding requests (ties: the one sent fewest), once
        one has room; None when every server is out or `stopped()` turns true while waiting."""
        with self._cond:
            while True:
                live = self._live()
                if not live or stopped():
                    return None
                room = [e for e in live if e.outstanding < self.per_server]
                if room:
                    best = min(room, key=lambda e: (e.outstanding, e.sent))
                    best.outstanding += 1
                    best.sent += 1
                    return best
                self._cond.wait(poll_s)

    def release(self, endpoint: Endpoint, answered: bool, sent: bool = True) -> None:
        """The request `acquire` chose `endpoint` for is over; `sent=False`: it never went out."""
        with self._cond:
            endpoint.outstanding -= 1
            endpoint.answered += int(answered)
            endpoint.sent -= int(not sent)
            self._cond.notify_all()

    def take_out(self, endpoint: Endpoint, reason: str) -> None:
        with self._cond:
            if endpoint.out_reason is None:
                endpoint.out_reason = reason
            self._cond.notify_all()
