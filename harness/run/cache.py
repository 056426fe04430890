"""The request cache that makes reruns resume: finished answers are saved as they arrive.

It uses lm-eval's request hashing (`hash_args`) and the same SqliteDict storage as lm-eval's
`CachingLM`, with four differences that resuming needs:

* answers are written one by one as the backend finishes them (it calls the `on_result` passed
  to its `generate_until`), not after the whole batch, so a killed run keeps what it had;
* each answer is stored with its request record (prompt hash and tokens, truncation, completion
  tokens, finish reason, a two-pass task's first output), so an answer read back is never fitted
  again and its samples row equals the fresh one apart from `from_cache`;
* failed requests are never written, so a rerun sends exactly those again;
* sampled requests are cached too. lm-eval skips them so that repeats differ; here the i-th
  repeat of a request has its own key. A cached sample is a valid draw; with
  `--per-request-seed` (GPU servers) it is also exactly what a rerun would have drawn.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

from harness.backends.lm import RequestRecord
from harness.errors import UserError

FORMAT = 3
"""Entries are {"text", "record"}, and the file holds the identity probe answer of the server that
filled it (harness/run/identity.py); part of the cache file's key, so files of another format
(format 1 stored only the text; format 2 did not say which served weights made its answers) are
never read."""


class ResumableLM:
    """Wraps an lm-eval LM; `generate_until` reads finished answers and sends only the rest."""

    def __init__(self, lm, path: str | os.PathLike):
        from sqlitedict import SqliteDict

        self.lm = lm
        self.path = str(path)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = SqliteDict(self.path, autocommit=True)
        except (OSError, sqlite3.Error) as e:
            raise self.cache_error(e) from e
        self.cached_records: list[RequestRecord] = []

    def __getattr__(self, name):
        # Everything but generate_until (log-likelihoods, rank, tokenizer...) is the wrapped LM's.
        return getattr(self.lm, name)

    @staticmethod
    def keys_for(requests) -> list[str]:
        from lm_eval.api.model import hash_args

        seen: dict[str, int] = {}
        keys = []
        for req in requests:
            base = hash_args("generate_until", req.args)
            k = seen.get(base, 0)
            seen[base] = k + 1
            keys.append(base if k == 0 else f"{base}#{k}")
        return keys

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        keys = self.keys_for(requests)
        results: list[str | None] = [None] * len(requests)
        for i, (key, req) in enumerate(zip(keys, requests)):
            entry = self.db.get(key)
            if entry is not None:
                results[i] = entry["text"]
                # the stored record names the task and document it was made for; this request's win
                fields = {**entry["record"], "task": req.task_name, "doc_id": req.doc_id, "from_cache": True}
                self.cached_records.append(RequestRecord(**fields))
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            def save(j: int, text: str, record: RequestRecord) -> None:
                try:
                    self.db[keys[todo[j]]] = {"text": text, "record": dataclasses.asdict(record)}
                except (OSError, sqlite3.Error) as e:  # a full disk, a read-only directory
                    raise self.cache_error(e) from e

            answers = self.lm.generate_until([requests[i] for i in todo], disable_tqdm=disable_tqdm, on_result=save)
            for j, i in enumerate(todo):
                results[i] = answers[j]
        try:
            self.db.commit()  # sqlitedict writes on a thread of its own; its errors surface here
        except (OSError, sqlite3.Error) as e:
            raise self.cache_error(e) from e
        return [r if r is not None else "" for r in results]

    def cache_error(self, e: Exception) -> UserError:
        return cache_error(self.path, e)

    def close(self) -> None:
        self.db.close()


def cache_error(path: str | os.PathLike, e: Exception) -> UserError:
    return UserError(f"cannot write the request cache {path} ({type(e).__name__}: {e}); free disk space "
                     "there, or pass --no-cache (a rerun then sends every request again)")
