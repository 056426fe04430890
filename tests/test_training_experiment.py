"""A 3-step tiny experiment on CPU; the real vLLM CPU server loads both checkpoints and the
harness evaluates them (one server per checkpoint: about a minute each on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.results import load_run
from harness.runner import EvalConfig, run_eval

CONFIG = Path(__file__).resolve().parent.parent / "training" / "configs" / "tiny-cpu.yaml"


@pytest.mark.server
@pytest.mark.slow
def test_experiment_checkpoints_serve_and_evaluate(tiny_model_dir, tmp_path):
    rc = cli_main(["experiment", "--config", str(CONFIG), f"model={tiny_model_dir}",
                   f"out_dir={tmp_path / 'exp'}", "steps=3"])
    assert rc == 0
    manifest = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert set(manifest["arms"]) == {"baseline", "longact"}
    assert manifest["arms"]["baseline"]["mask_hash"] != manifest["arms"]["longact"]["mask_hash"]
    for name, arm in manifest["arms"].items():
        cfg = EvalConfig(model=arm["checkpoint"], tasks=["tiny_passkey"], limit=3, max_model_len=2048,
                         output_dir=str(tmp_path / "results"), run_id=f"exp-{name}", progress=False)
        rec = load_run(run_eval(cfg))
        assert rec.status == "complete" and rec.tasks["tiny_passkey"].n_samples == 3, name
