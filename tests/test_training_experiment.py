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


def test_arms_ratios_and_ablation_seeds():
    from tasks.errors import UserError
    from training.experiment import Arm, arms_of, parse_ratios

    arms = arms_of(["random"], parse_ratios("0.1,0.5", 0.3), 0.3, [0, 1, 2], [0])
    assert arms == {"baseline": Arm("none", 0.3, (0, 1, 2)), "longact": Arm("longact", 0.3, (0, 1, 2)),
                    "random": Arm("random", 0.3, (0,)), "longact-r0.1": Arm("longact", 0.1, (0,)),
                    "longact-r0.5": Arm("longact", 0.5, (0,))}
    for text, message in (("0", "outside (0, 1]"), ("1.5", "outside (0, 1]"), ("0.3", "the config's mask.keep_ratio"),
                          ("x", "not a number"), ("0.1,0.1", "given twice")):
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_ratios(text, 0.3)
    with pytest.raises(UserError, match="not in --seeds"):
        arms_of([], [0.5], 0.3, [0, 1], [2])


def test_manifest_names_the_finished_runs_after_each_one(tmp_path, monkeypatch):
    """A stopped experiment's manifest holds every run that finished (`complete: false`), so
    `eval --experiment` can start on them; the last run sets `complete: true`. The training is
    replaced by a function that makes a checkpoint folder (this tests the orchestration only)."""
    import training.experiment as E
    from training.config import TrainConfig

    calls = []

    def fake_train(cfg, log=print):
        calls.append((cfg.mask.strategy, cfg.mask.keep_ratio, cfg.seed))
        if len(calls) == 3:
            raise KeyboardInterrupt
        ckpt = Path(cfg.out_dir) / "step-2"
        (ckpt / "longact_mask").mkdir(parents=True)
        (ckpt / "longact_mask" / "mask.json").write_text(json.dumps({"hash": f"h{len(calls)}"}))
        return ckpt

    monkeypatch.setattr(E, "train", fake_train)
    cfg = TrainConfig(model="m", out_dir=str(tmp_path / "exp"))
    with pytest.raises(KeyboardInterrupt):
        E.run_experiment(cfg, seeds=[0, 1], ratios=[0.5], ablation_seeds=[0])
    manifest = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert manifest["complete"] is False and list(manifest["arms"]) == ["baseline"]
    assert set(manifest["arms"]["baseline"]["seeds"]) == {"0", "1"}
    assert calls == [("none", 0.3, 0), ("none", 0.3, 1), ("longact", 0.3, 0)]
