"""The training loop with vLLM rollouts (the CPU build's offline engine): after every optimizer
step the engine must sample from the updated policy, which the loop measures as the mean
|engine log-prob - trainer log-prob| per token at each step's first update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import load_config
from training.train import train

ROOT = Path(__file__).resolve().parent.parent


CONFIG = ROOT / "training" / "configs" / "tiny-cpu.yaml"
ARGS = [f"model={ROOT / 'assets' / 'tiny-qwen3-skilled'}", "backend=vllm", "vllm={enforce_eager: true}",
        "sampling.temperature=2.0", "steps=3", "lr=1e-2"]


def _run(out: Path) -> list[dict]:
    train(load_config(str(CONFIG), [*ARGS, f"out_dir={out}"]), resume=False, log=lambda *_: None)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_vllm_rollouts_follow_the_policy_through_weight_syncs(tmp_path, monkeypatch):
    metrics = _run(tmp_path / "run")
    record = json.loads((tmp_path / "run" / "rollout.json").read_text())
    assert record["backend"] == "vllm" and record["vllm"] and record["dtype"] == "float32"
    assert any(m["grad_norm"] > 0 for m in metrics[:2])  # the policy did move between rollouts
    diffs = [m["rollout/logp_abs_diff"] for m in metrics]
    assert all(0 < d < 1e-3 for d in diffs), diffs  # float32 engine = policy, step after step

    # The same run with the sync switched off: the engine keeps sampling from the start weights
    # and the mismatch shows from step 2 on, so the check above can fail.
    from training import rollout

    monkeypatch.setattr(rollout.VLLMRollout, "sync", lambda self, model: None)
    stale = [m["rollout/logp_abs_diff"] for m in _run(tmp_path / "nosync")]
    assert stale[0] < 1e-3 and max(stale[1:]) > 10 * max(diffs), (stale, diffs)
