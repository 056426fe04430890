"""Trainer faults: killed while saving a checkpoint, and a NaN loss, on the tiny model (CPU)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training import losses as L
from training.checkpoint import latest as latest_checkpoint
from training.config import load_config
from training.train import train

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "training" / "configs" / "tiny-cpu.yaml"
SKILLED = ROOT / "assets" / "tiny-qwen3-skilled"
ARGS = [f"model={SKILLED}", "sampling.temperature=2.0", "steps=3", "save_every=1"]  # mixed rewards: real gradients


def cfg(out, *extra):
    return load_config(str(CONFIG), [*ARGS, f"out_dir={out}", *extra])


def weights(ckpt: Path) -> dict:
    return load_file(ckpt / "model.safetensors")


@pytest.mark.slow
def test_sigkill_during_checkpoint_save_then_bit_exact_resume(tmp_path):
    reference = train(cfg(tmp_path / "ref"), resume=False, log=lambda *_: None)
    out = tmp_path / "killed"
    # A real SIGKILL in the middle of writing step-2: after the weights, before the trainer state.
    script = textwrap.dedent(f"""
        import os, signal, torch
        import training.train as T
        from training.config import load_config
        real_save = torch.save
        def dying_save(obj, path, *a, **k):
            if ".step-2.tmp" in str(path):
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, path, *a, **k)
        T.torch.save = dying_save
        T.train(load_config({str(CONFIG)!r}, {ARGS!r} + ["out_dir={out}"]), resume=False, log=lambda *_: None)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert latest_checkpoint(out).name == "step-1"                 # the half-written step-2 is not picked up
    assert (out / ".step-2.tmp").exists() and not (out / "step-2").exists()
    resumed = train(cfg(out), resume=True, log=lambda *_: None)
    a, b = weights(reference), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_nan_loss_skips_the_step_and_keeps_masked_rows(tmp_path, monkeypatch):
    real = L.AGGREGATIONS["seq_mean_token_mean"]
    calls = {"n": 0}

    def poisoned(per_token, mask, **kw):
        calls["n"] += 1
        loss = real(per_token, mask, **kw)
        return loss * float("nan") if calls["n"] == 3 else loss  # the first micro-batch of step 2

    monkeypatch.setitem(L.AGGREGATIONS, "seq_mean_token_mean", poisoned)
    messages = []
    final = train(cfg(tmp_path / "nan"), resume=False, log=messages.append)
    metrics = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [m["skipped_nonfinite_steps"] for m in metrics] == [0, 1, 1]
    assert all(m["mask/masked_rows_changed"] == 0 for m in metrics)
    assert any("update skipped" in str(m) for m in messages)
    step1, step2 = weights(tmp_path / "nan" / "step-1"), weights(tmp_path / "nan" / "step-2")
    assert all(torch.equal(step1[k], step2[k]) for k in step1)     # the skipped step moved nothing
    assert all(torch.isfinite(v).all() for v in weights(final).values())
