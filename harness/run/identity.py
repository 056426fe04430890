"""What is served, proven before any cached answer is reused.

Three identities, each defined once:

* a model's files: `provenance.weights_sha256` (weight files and model configs, by content);
* a tokenizer: `tasks.tokens.tokenizer_identity` (what it does, not its files' bytes);
* a served model: `serve.served_fingerprint`, the hash of a server's greedy answer (text and
  log-probs to two decimals) to a fixed probe. Only the server knows which weights it loaded;
  a name, or a path that is readable here, says nothing about the copy the server read.

The proof (`probe_servers`, `claim_cache`): every server, started here or given with
--base-url, answers the probe before any request; several must answer alike. The request cache
holds the probe answer of the server that filled it (`CLAIM_KEY`), and its answers are reused only
when the servers now give that same answer; otherwise the run is refused, naming both answers, the
servers and the local weights' hash. Weights whose probe answers agree to two decimals in every
log-prob are indistinguishable to this proof; weights served at another precision answer
differently and count as other weights (their answers differ too).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.records.schema import ModelInfo
from harness.run.cache import cache_error

CLAIM_KEY = "served_identity"
"""The request cache's entry naming what filled it (request keys are hex hashes: no clash)."""


@dataclass
class ServedIdentity:
    """Each server's identity probe answer (None: it gave no log-probs) and what asking cost."""

    fingerprints: list[str | None]
    probe_s: float


def probe_servers(base_urls: list[str], models: list[str], api_key: str | None) -> ServedIdentity:
    """Ask every server the identity probe (one 8-token greedy completion each); several servers
    must give one answer (`check_same_weights`)."""
    from harness.backends.serve import served_fingerprint

    t0 = time.monotonic()
    prints = [served_fingerprint(url, model, api_key) for url, model in zip(base_urls, models)]
    probe_s = round(time.monotonic() - t0, 3)
    if len(base_urls) > 1:
        check_same_weights(base_urls, prints)
    return ServedIdentity(prints, probe_s)


def check_same_weights(base_urls: list[str], prints: list[str | None]) -> None:
    """Several servers must give one identity probe answer; name the server(s) that differ from
    the most common answer, or that give none."""
    silent = [u for u, fp in zip(base_urls, prints) if fp is None]
    if silent:
        raise UserError(f"cannot tell whether {', '.join(silent)} serve(s) the same weights as the others: no answer "
                        "with log-probs to the identity probe. Several servers must be checked before they share a run")
    common = max(set(prints), key=prints.count)
    odd = [u for u, fp in zip(base_urls, prints) if fp != common]
    if odd:
        agree = [u for u, fp in zip(base_urls, prints) if fp == common]
        raise UserError(f"{', '.join(odd)} serve(s) other weights than {', '.join(agree)} (their greedy answers to the "
                        "identity probe differ); one run must not mix models. Serve one checkpoint on every server")


def claim_cache(path: str | os.PathLike, model: ModelInfo, servers: list[str], managed: bool, run_id: str) -> bool:
    """May the request cache at `path` be read and filled by this run? Its claim (what filled it)
    must equal what is served now (`model.served_fingerprint`); a cache without one gets this run's.

    True: use it. False: the served weights cannot be proven (a server the harness did not start,
    that gives no probe answer), so the run goes without a cache. Raises UserError naming both
    identities when the cache was filled by other weights than those served now."""
    from sqlitedict import SqliteDict

    served = model.served_fingerprint
    if served is None and not managed:
        return False
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = SqliteDict(str(path), autocommit=True)
        try:
            claim = db.get(CLAIM_KEY)
            if claim is None:
                if served is None:  # a server started here from the files that key the cache, silent to the probe
                    return True
                if len(db):
                    raise UserError(f"the request cache {path} does not say which weights filled it, so its answers "
                                    "cannot be proven to be this model's; delete it, or evaluate into another "
                                    "--output-dir")
                db[CLAIM_KEY] = {"fingerprint": served, "servers": list(servers), "managed": managed,
                                 "run_id": run_id, "weights_sha256": model.weights_sha256}
                return True
        finally:
            db.close()
    except (OSError, sqlite3.Error) as e:
        raise cache_error(path, e) from e
    if served is None or claim["fingerprint"] == served:
        return True
    raise UserError(mismatch_message(path, model, claim, servers, managed))


def mismatch_message(path, model: ModelInfo, claim: dict, servers: list[str], managed: bool) -> str:
    here = (f"the weights at {model.path} on this machine (sha256 {model.weights_sha256[:16]})"
            if model.weights_sha256 else f"the model served as {model.path}")
    filled_by = (f"{'a server this harness started' if claim.get('managed') else 'the server'} at "
                 f"{', '.join(claim.get('servers') or ['?'])} (run {claim.get('run_id')})")
    now = f"{'the server started here' if managed else 'the server'} at {', '.join(servers)}"
    return (f"refusing to reuse the answers cached for {here}: they came from {filled_by}, whose answer to the "
            f"identity probe was {claim['fingerprint'][:16]}, but {now} answers {model.served_fingerprint[:16]}. The two "
            f"serve different weights: a server serving other weights under that name, or a copy of {model.path} "
            "that differs between the machines. Serve the same weights, or evaluate into another --output-dir (or "
            f"with --no-cache). Cache: {path}")
