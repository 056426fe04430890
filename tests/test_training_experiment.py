"""A 3-step tiny experiment on CPU; the real vLLM CPU server loads both checkpoints and the
harness evaluates them (one server per checkpoint: about a minute each on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.records.io import load_run
from longact.cli import main as cli_main

CONFIG = Path(__file__).resolve().parent.parent / "training" / "configs" / "tiny-cpu.yaml"


@pytest.mark.server
@pytest.mark.slow
def test_experiment_checkpoints_serve_and_evaluate(tiny_model_dir, tmp_path, capsys):
    exp = tmp_path / "exp"
    rc = cli_main(["experiment", "--config", str(CONFIG), f"model={tiny_model_dir}", f"out_dir={exp}", "steps=3"])
    assert rc == 0
    manifest = json.loads((exp / "experiment.json").read_text())
    assert set(manifest["arms"]) == {"baseline", "longact"}
    assert manifest["arms"]["baseline"]["mask_hash"] != manifest["arms"]["longact"]["mask_hash"]
    results = tmp_path / "results"
    assert cli_main(["compare", "--experiment", str(exp / "experiment.json"), "--results", str(results)]) == 2
    assert "no finished evaluation for arm(s) baseline" in capsys.readouterr().err
    # one command serves and evaluates every arm through the real vLLM CPU server, then compares
    assert cli_main(["eval", "--experiment", str(exp / "experiment.json"), "--tasks", "tiny_passkey", "--limit", "3",
                     "--max-model-len", "2048", "--output-dir", str(results), "--quiet"]) == 0
    for arm in ("baseline", "longact"):
        rec = load_run(results / f"exp-{arm}")
        assert rec.status == "complete" and rec.tasks["tiny_passkey"].n_samples == 3, arm
        assert rec.model.path == manifest["arms"][arm]["checkpoint"]
    capsys.readouterr()
    assert cli_main(["compare", "--experiment", str(exp / "experiment.json"), "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert "baseline: baseline/step-3" in table and "longact/step-3" in table and "tiny_passkey" in table
