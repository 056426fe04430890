"""Never another model's answers: a server that serves other weights under a name whose files are
readable here must not get the answers cached for those files. Stub OpenAI servers
(tests/stub_openai.py) stand in for vLLM; their answer to the identity probe (log-probs) is what
tells weights apart, as vLLM's greedy log-probs do. Each case ran to `complete` on the code before
the served identity was proven for every server (0 requests sent, the old weights' answers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.records.io import load_run
from harness.records.provenance import weights_sha256
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from tests.stub_openai import ok_answer


def original(path, body):
    return ok_answer(body, "12345")


def perturbed(path, body):
    """Other weights: another answer, and other log-probs for the identity probe."""
    status, payload = ok_answer(body, "99999")
    if "logprobs" in body:
        payload["choices"][0]["logprobs"]["token_logprobs"] = [-0.75, -1.5]
    return status, payload


def _cfg(urls, tok, out, no_cache=False):
    return EvalConfig(tokenizer=str(tok), client=ClientConfig(base_url=",".join(urls), max_retries=1),
                      run=RunConfig(tasks=["tiny_passkey"], output_dir=str(out), progress=False,
                                    use_cache=not no_cache))


def _first_run(stubs, name, tok, out):
    """The cache of `name`'s weights, filled by a server that serves them."""
    server = stubs(model=name, respond=original)
    rec = load_run(run_eval(_cfg([server.url], tok, out)))
    assert rec.status == "complete" and rec.requests["sent"] == 30 and rec.model.weights_sha256
    return rec


def _refused(stubs_made, cfg, first, match):
    with pytest.raises(UserError, match=match) as e:
        run_eval(cfg)
    message = str(e.value)
    assert first.model.served_fingerprint  # what was served is recorded, not only what the path holds
    assert first.model.served_fingerprint[:16] in message  # both identities named
    assert all(not s.completions() for s in stubs_made), "no request may be sent before the proof"
    refused = next(r for r in map(load_run, Path(cfg.run.output_dir).glob("2*")) if r.status == "failed")
    assert refused.model.served_fingerprint and refused.model.served_fingerprint != first.model.served_fingerprint
    assert refused.model.served_fingerprint[:16] in message
    return message


def test_one_server_serving_other_weights_under_the_original_path_is_refused(stubs, tiny_model_dir, tmp_path):
    first = _first_run(stubs, str(tiny_model_dir), tiny_model_dir, tmp_path)
    other = stubs(model=str(tiny_model_dir), respond=perturbed)
    message = _refused([other], _cfg([other.url], tiny_model_dir, tmp_path), first, "refusing to reuse the answers")
    assert other.url in message and first.model.weights_sha256[:16] in message
    # without the cache nothing is reused, and the run is the served weights' own
    rec = load_run(run_eval(_cfg([other.url], tiny_model_dir, tmp_path, no_cache=True)))
    assert rec.requests["cached"] == 0 and rec.requests["sent"] == 30 and rec.tasks["tiny_passkey"].metrics["score"].value == 0


def test_two_servers_both_serving_other_weights_under_the_original_path_are_refused(stubs, tiny_model_dir, tmp_path):
    first = _first_run(stubs, str(tiny_model_dir), tiny_model_dir, tmp_path)
    a, b = stubs(model=str(tiny_model_dir), respond=perturbed), stubs(model=str(tiny_model_dir), respond=perturbed)
    message = _refused([a, b], _cfg([a.url, b.url], tiny_model_dir, tmp_path), first, "refusing to reuse the answers")
    assert a.url in message and b.url in message


def test_a_client_whose_local_copy_differs_from_the_servers_is_refused(stubs, tiny_model_dir, tmp_path):
    """The client evaluated its own copy of the path before; the cluster's server reads that path
    from its node's copy, which holds other weights."""
    copy = tmp_path / "shared" / "ckpt"
    shutil.copytree(tiny_model_dir, copy)
    first = _first_run(stubs, str(copy), copy, tmp_path / "out")
    assert first.model.weights_sha256 == weights_sha256(copy)
    node = stubs(model=str(copy), respond=perturbed)
    message = _refused([node], _cfg([node.url], copy, tmp_path / "out"), first, "a copy of .* that differs")
    assert f"sha256 {weights_sha256(copy)[:16]}" in message


def test_the_same_weights_on_another_server_resume_and_the_probe_cost_is_recorded(stubs, tiny_model_dir, tmp_path):
    first = _first_run(stubs, str(tiny_model_dir), tiny_model_dir, tmp_path)
    assert first.serving.identity_probe_s is not None and first.serving.identity_probe_s >= 0
    again = stubs(model=str(tiny_model_dir), respond=original)
    rec = load_run(run_eval(_cfg([again.url], tiny_model_dir, tmp_path)))
    assert rec.requests["cached"] == 30 and rec.requests["sent"] == 0
    assert rec.model.served_fingerprint == first.model.served_fingerprint


def test_extra_server_args_are_recorded_only_for_servers_the_harness_starts(stubs, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LONGACT_SERVER_ARGS", "--max-num-seqs 3 --seed 7")
    s = stubs()
    cfg = _cfg([s.url], tiny_model_dir, tmp_path)
    assert cfg.serve.extra_args == ["--max-num-seqs", "3", "--seed", "7"]  # what a started server would get
    rec = load_run(run_eval(cfg))
    assert rec.serving.managed is False and rec.serving.extra_args == []
