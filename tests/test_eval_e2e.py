"""The tiny suite end to end: real vLLM server (one per session) and lm-eval's hf backend."""

import json

import pytest

from harness.errors import UserError
from harness.records.io import load_run
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from tests.conftest import SERVER_WINDOW

pytestmark = pytest.mark.server
SIZES = {"tiny_mc": 40, "tiny_niah": 45, "tiny_passkey": 30, "tiny_kv": 30}


def _samples(run_dir, task):
    return [json.loads(l) for l in (run_dir / f"samples_{task}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def server_run(vllm_server, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url), run=RunConfig(tasks=["tiny"], output_dir=str(out), progress=False))
    return cfg, run_eval(cfg)


def test_server_run_is_complete_with_provenance(server_run, tiny_model_dir):
    cfg, run_dir = server_run
    rec = load_run(run_dir)
    assert rec.status == "complete" and rec.serving.backend == "server"
    assert rec.serving.max_model_len == SERVER_WINDOW          # read from the server
    assert rec.serving.server_version and rec.model.tokenizer_sha256
    assert set(rec.tasks) == set(SIZES) and "tiny" in rec.groups
    assert sorted(rec.group_members["tiny"]) == sorted(SIZES)  # membership recorded, not guessed from names
    for name, n in SIZES.items():
        t = rec.tasks[name]
        assert t.n_samples == n and t.n_errors == 0 and t.version == "1.0"
        assert len(t.config_hash) == 64 and len(t.dataset_fingerprint) == 64
        assert t.metrics["score"].n == n and 0.0 <= t.metrics["score"].value <= 100.0
        rows = _samples(run_dir, name)
        assert len(rows) == n
        budget = t.generation_kwargs["max_gen_toks"]
        assert all(r["prompt_tokens"] + budget <= SERVER_WINDOW for r in rows)
    # tiny_mc's long items exceed the 2048 window: they were fitted, counted, and still answered
    mc = rec.tasks["tiny_mc"]
    assert mc.n_truncated > 0
    assert sum(r["truncated"] for r in _samples(run_dir, "tiny_mc")) == mc.n_truncated
    assert rec.tasks["tiny_mc"].endpoint == "chat" and rec.tasks["tiny_niah"].endpoint == "completion"
    assert rec.requests["total"] == sum(SIZES.values()) and rec.requests["failed"] == 0


def test_scores_recomputed_from_samples_match(server_run):
    """The reported metric is the mean of per-sample scores recomputed with the official scorers."""
    from tasks.tiny import utils

    _, run_dir = server_run
    rec = load_run(run_dir)
    scorers = {"tiny_mc": utils.mc_results, "tiny_niah": utils.niah_results,
               "tiny_passkey": utils.passkey_results, "tiny_kv": utils.kv_results}
    docs = {name: [json.loads(l) for l in (utils.DATA_DIR / f"{name}.jsonl").read_text().splitlines()] for name in SIZES}
    for name, fn in scorers.items():
        rows = _samples(run_dir, name)
        scores = [fn(docs[name][r["doc_id"]], [r["response"]])["score"] for r in rows]
        assert rec.tasks[name].metrics["score"].value == pytest.approx(sum(scores) / len(scores))


def test_rerun_resumes_from_cache_and_sends_nothing(server_run):
    cfg, first_dir = server_run
    second_dir = run_eval(cfg)
    first, second = load_run(first_dir), load_run(second_dir)
    assert second.requests["sent"] == 0 and second.requests["cached"] == second.requests["total"] == sum(SIZES.values())
    for name in SIZES:
        assert second.tasks[name].metrics["score"] == first.tasks[name].metrics["score"]
        assert second.tasks[name].n_truncated == first.tasks[name].n_truncated
        fresh, cached = _samples(first_dir, name), _samples(second_dir, name)
        assert all(r["from_cache"] for r in cached) and not any(r["from_cache"] for r in fresh)
        assert [{**r, "from_cache": None} for r in fresh] == [{**r, "from_cache": None} for r in cached]
        assert second.tasks[name].completion_tokens == first.tasks[name].completion_tokens > 0


def test_a_window_over_the_servers_is_refused_before_any_request(vllm_server, tiny_model_dir, tmp_path):
    """Claiming 4096 tokens against the 2048-token server would get HTTP 400s that no rerun can
    fix; the run stops before sending (the stub-server tests in tests/faults/test_new_user.py
    cover 400s that do reach the client)."""
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), max_model_len=4096,
                     client=ClientConfig(base_url=vllm_server.base_url, max_retries=1),
                     run=RunConfig(tasks=["tiny_mc"], output_dir=str(tmp_path), progress=False))
    with pytest.raises(UserError, match="exceeds the 2048-token window"):
        run_eval(cfg)
    rec = load_run(next(p.parent for p in tmp_path.glob("2*/run.json")))
    assert rec.status == "failed" and not rec.tasks


def test_hf_backend_sees_the_same_prompts(server_run, tiny_model_dir, tmp_path):
    _, server_dir = server_run
    cfg = EvalConfig(model=str(tiny_model_dir), backend="hf", max_model_len=SERVER_WINDOW, run=RunConfig(tasks=["tiny"], limit=3, output_dir=str(tmp_path), progress=False))
    rec = load_run(run_eval(cfg))
    assert rec.status == "complete" and rec.serving.backend == "hf" and rec.limit == 3
    for name in SIZES:
        assert rec.tasks[name].n_samples == 3
        hf_rows = {r["doc_id"]: r for r in _samples(tmp_path / rec.run_id, name)}
        srv_rows = {r["doc_id"]: r for r in _samples(server_dir, name)}
        for doc_id, row in hf_rows.items():
            assert row["prompt_hash"] == srv_rows[doc_id]["prompt_hash"], (name, doc_id)
