"""A tiny experiment on CPU at two seeds: every arm x seed (and every saved step) evaluated on
one real vLLM CPU engine with weights swapped between checkpoints, then the arms compared with
seed-aggregated statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.records.io import load_run
from longact.cli import main as cli_main

CONFIG = Path(__file__).resolve().parent.parent / "training" / "configs" / "tiny-cpu.yaml"


@pytest.mark.server
@pytest.mark.slow
def test_experiment_at_two_seeds_evaluates_on_one_engine_and_compares(tiny_model_dir, tmp_path, capsys):
    exp = tmp_path / "exp"
    rc = cli_main(["experiment", "--config", str(CONFIG), f"model={tiny_model_dir}", f"out_dir={exp}", "steps=2",
                   "save_every=1", "--seeds", "0,1"])
    assert rc == 0
    manifest = json.loads((exp / "experiment.json").read_text())
    assert set(manifest["arms"]) == {"baseline", "longact"} and manifest["seeds"] == [0, 1]
    for arm in ("baseline", "longact"):
        seeds = manifest["arms"][arm]["seeds"]
        assert set(seeds) == {"0", "1"} and set(seeds["0"]["steps"]) == {"1", "2"}
        assert seeds["0"]["checkpoint"] != seeds["1"]["checkpoint"]
    assert manifest["arms"]["baseline"]["seeds"]["0"]["mask_hash"] != manifest["arms"]["longact"]["seeds"]["0"]["mask_hash"]
    results = tmp_path / "results"
    assert cli_main(["compare", "--experiment", str(exp / "experiment.json"), "--results", str(results)]) == 2
    assert "no finished evaluation for baseline seed 0" in capsys.readouterr().err
    argv = ["eval", "--experiment", str(exp / "experiment.json"), "--all-steps", "--tasks", "tiny_passkey", "--limit", "3",
            "--max-model-len", "2048", "--output-dir", str(results), "--quiet"]
    assert cli_main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("starting one vLLM engine") == 1
    for arm in ("baseline", "longact"):
        for seed in (0, 1):
            rec = load_run(results / f"exp-{arm}-s{seed}")
            assert rec.status == "complete" and rec.tasks["tiny_passkey"].n_samples == 3, (arm, seed)
            assert rec.model.path == manifest["arms"][arm]["seeds"][str(seed)]["checkpoint"]
            assert load_run(results / f"exp-{arm}-s{seed}-step1").status == "complete"
    capsys.readouterr()
    assert cli_main(["compare", "--experiment", str(exp / "experiment.json"), "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert "baseline arm: baseline · seeds 0, 1" in table and "hierarchical bootstrap" in table
    assert "score against training step" in table
    assert cli_main(argv) == 0  # a finished sweep: nothing redone, no engine started
    assert "starting one vLLM engine" not in capsys.readouterr().err
