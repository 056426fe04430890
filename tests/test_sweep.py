"""One vLLM engine for many checkpoints: weights swapped between checkpoints give the same
samples as a fresh server per checkpoint, each run names its own checkpoint and weight hash, and
a finished sweep is not redone."""

import json
from pathlib import Path

import pytest

from harness.records.io import load_run
from harness.records.provenance import weights_sha256
from harness.run.config import EvalConfig, RunConfig
from harness.run.runner import run_eval
from harness.run.sweep import run_sweep
from tests.conftest import SERVER_WINDOW

pytestmark = [pytest.mark.server, pytest.mark.slow]
TASKS = ["tiny_niah", "tiny_passkey"]


@pytest.fixture(scope="module")
def checkpoints(tiny_model_dir, tmp_path_factory):
    """Three checkpoints of one architecture and tokenizer: the tiny model and two perturbed copies."""
    from longact.tiny.model import perturbed_copy

    root = tmp_path_factory.mktemp("ckpts")
    return [str(tiny_model_dir)] + [str(perturbed_copy(tiny_model_dir, root / f"ckpt-{s}", seed=s)) for s in (1, 2)]


def _rows(run_dir, task):
    return [json.loads(line) for line in (run_dir / f"samples_{task}.jsonl").read_text().splitlines()]


KEYS = ("doc_id", "prompt_hash", "response", "metrics", "completion_tokens")


def same_samples(a: Path, b: Path) -> bool:
    return all([{k: r[k] for k in KEYS} for r in _rows(a, task)] == [{k: r[k] for k in KEYS} for r in _rows(b, task)]
               for task in TASKS)


def sweep_config(out: Path, servers: int = 1) -> EvalConfig:
    cfg = EvalConfig(max_model_len=SERVER_WINDOW, run=RunConfig(tasks=TASKS, limit=8, output_dir=str(out), progress=False))
    cfg.serve.servers = servers
    return cfg


@pytest.fixture(scope="module")
def one_engine(checkpoints, tmp_path_factory):
    """One engine, launched early on ck0 (before the sweep knows the other checkpoints, as the
    demo does while it trains), swaps to ck1 and then to ck2."""
    from harness.run.sweep import launch_early

    cfg = sweep_config(tmp_path_factory.mktemp("sweep"))
    with launch_early(cfg, {"ck0": checkpoints[0]}) as early:
        (url,) = [s.base_url for s in early.servers]
        runs = run_sweep(cfg, {f"ck{i}": c for i, c in enumerate(checkpoints)}, early=early)
        assert early.servers == []  # the sweep took the early engine
    return cfg, runs, url


@pytest.fixture(scope="module")
def two_engines(checkpoints, tmp_path_factory):
    """--servers 2 in the other order: the engines start on ck2 and ck1, and one swaps to ck0. So
    each checkpoint is served once from a fresh start and once after a swap (in `one_engine`)."""
    order = {f"ck{i}": checkpoints[i] for i in (2, 1, 0)}
    return run_sweep(sweep_config(tmp_path_factory.mktemp("sweep2"), servers=2), order)


def test_one_engine_runs_name_their_checkpoint_and_a_finished_sweep_is_not_redone(checkpoints, one_engine, vllm_server,
                                                                                   tmp_path):
    """Each run records its own checkpoint and weight hash; the first checkpoint's samples equal
    those of the session's server (a plain fresh server on it); a rerun starts no engine."""
    from harness.run.config import ClientConfig

    cfg, runs, early_url = one_engine
    assert list(runs) == ["ck0", "ck1", "ck2"]
    for i, ckpt in enumerate(checkpoints):
        rec = load_run(runs[f"ck{i}"])
        assert rec.status == "complete" and rec.model.path == ckpt
        assert rec.serving.base_url == early_url  # every run on the engine launched early
        assert rec.model.weights_sha256 == weights_sha256(ckpt)
        assert (rec.serving.weights_swap_s is None) == (i == 0) and rec.serving.managed
    run = RunConfig(tasks=TASKS, limit=8, output_dir=str(tmp_path / "fresh"), use_cache=False, progress=False)
    fresh = load_run(run_eval(EvalConfig(tokenizer=checkpoints[0], client=ClientConfig(base_url=vllm_server.base_url),
                                         run=run)))
    assert same_samples(runs["ck0"], tmp_path / "fresh" / fresh.run_id)
    responses = [[r["response"] for r in _rows(runs[f"ck{i}"], "tiny_niah")] for i in range(3)]
    assert responses[0] != responses[1] != responses[2]  # the swaps really changed the weights

    again = run_sweep(cfg, {f"ck{i}": c for i, c in enumerate(checkpoints)})  # finished: no engine, no redo
    assert again == runs


def test_a_swapped_checkpoint_gives_a_fresh_servers_samples_on_either_engine(checkpoints, one_engine, two_engines):
    """--servers 2: both engines serve; every checkpoint's samples and metrics after a swap equal
    those from a server started on it (ck0: fresh in `one_engine`, swapped here; ck1 and ck2: the
    other way round)."""
    _, single, _ = one_engine
    assert sorted(two_engines) == ["ck0", "ck1", "ck2"]
    urls = set()
    for rid, run_dir in two_engines.items():
        rec, ref = load_run(run_dir), load_run(single[rid])
        assert rec.status == "complete" and rec.model.path == ref.model.path
        assert rec.model.weights_sha256 == ref.model.weights_sha256
        assert (rec.serving.weights_swap_s is None) == (rid != "ck0")
        assert (ref.serving.weights_swap_s is None) == (rid == "ck0")
        assert {t: r.metrics for t, r in rec.tasks.items()} == {t: r.metrics for t, r in ref.tasks.items()}
        assert same_samples(run_dir, single[rid]), rid
        urls.add(rec.serving.base_url)
    assert len(urls) == 2  # both engines served checkpoints


def test_tied_checkpoints_are_served_untied_with_the_same_numbers(tmp_path):
    """No server: the view's output layer is the embedding matrix itself, so logits are unchanged."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from harness.run.sweep import serving_view
    from tests.conftest import ROOT

    skilled = ROOT / "assets" / "tiny-qwen3-skilled"
    view = Path(serving_view(str(skilled), tmp_path))
    assert view != skilled.resolve() and json.loads((view / "config.json").read_text())["tie_word_embeddings"] is False
    embed = load_file(str(skilled / "model.safetensors"))["model.embed_tokens.weight"]
    assert torch.equal(load_file(str(view / "model-00002-of-00002.safetensors"))["lm_head.weight"], embed)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(skilled, dtype=torch.float32)(ids).logits
        b = AutoModelForCausalLM.from_pretrained(view, dtype=torch.float32)(ids).logits
    assert torch.equal(a, b)
    assert serving_view(str(skilled), tmp_path) == str(view)  # made once
    untied = tmp_path / "untied"
    untied.mkdir()
    (untied / "config.json").write_text(json.dumps({"tie_word_embeddings": False}))
    assert serving_view(str(untied), tmp_path) == str(untied.resolve())


def test_early_engines_on_other_checkpoints_are_stopped_not_used():
    """An engine launched early on a checkpoint the sweep does not start on (it was already
    evaluated, or more engines are wanted) is stopped, and the sweep starts its own."""
    from harness.run.sweep import EarlyEngines

    class Booting:
        stopped = False

        def wait_ready(self):
            return self

        def stop(self):
            self.stopped = True

    server = Booting()
    early = EarlyEngines(["ck0"], [server])
    assert early.take(["ck1"]) is None and server.stopped and early.servers == []
    other = Booting()
    assert EarlyEngines(["ck0"], [other]).take(["ck0"]) == [other] and not other.stopped
