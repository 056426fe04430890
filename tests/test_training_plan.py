"""The GPU presets' pre-flight (`longact train --plan`, training/plan.py): the trainer's own update
simulated under fake tensors at the preset's world size, checked against arithmetic, and each GPU
preset's fit pinned."""

import json
from pathlib import Path

import pytest

from longact.cli import main
from tasks.model_config import GPUS
from training import plan as P
from training.config import load_config

ROOT = Path(__file__).resolve().parent.parent
QWEN3_8B = json.loads((ROOT / "tasks/model_configs/Qwen/Qwen3-8B/config.json").read_text())
GPU_PRESETS = ["qwen3-8b-grpo", "qwen3-8b-dapo", "qwen3-4b-grpo", "qwen3-4b-dapo"]
# which presets also fit an 80 GB H100 as they are (all four fit the H200 they name)
FITS_H100 = {"qwen3-8b-grpo": False, "qwen3-8b-dapo": True, "qwen3-4b-grpo": True, "qwen3-4b-dapo": True}


def _preset(name: str, *overrides: str):
    return load_config(str(ROOT / "training/configs" / f"{name}.yaml"), list(overrides))


def test_accounting_matches_arithmetic(tmp_path):
    """Qwen3-8B's widths with 2 layers at 1,024 tokens: the categories that do not depend on the
    micro-batch equal their byte counts. AdamW's moments (8 bytes per parameter, sharded) count
    although AdamW makes them lazily inside step(): tracking a run's first update reads 0 there."""
    (tmp_path / "config.json").write_text(json.dumps(dict(QWEN3_8B, num_hidden_layers=2, max_window_layers=2)))
    cfg = _preset("qwen3-8b-grpo", f"model={tmp_path}")
    p = P.plan(cfg, world=8, tokens=1024, flops=False)
    n, gib = p.parameters, 2**30
    assert n == 2 * 151_936 * 4096 + 2 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 12288 + 2 * 4096 + 2 * 128) + 4096
    assert p.memory["OptState"] == pytest.approx(8 * n / 8 / gib, rel=0.01)
    assert p.memory["Sharded Param"] == pytest.approx(4 * n / 8 / gib, rel=0.01)
    assert p.memory["Reference model"] >= 4 * n / 8 / gib  # kl_coef > 0: a second sharded copy
    frozen_rows = 2 * (4096 - 1228 + 1024 - 307)  # 30% of q_proj's and k_proj's rows update, the rest are snapshotted
    assert p.memory["Mask snapshot"] == pytest.approx(frozen_rows * 4096 * 4 / 8 / gib, rel=0.05)
    assert p.memory["Activation"] + p.memory["Temp"] > 0


def test_engine_share_is_arithmetic():
    cfg = _preset("qwen3-8b-grpo")
    assert P.kv_bytes_per_token(QWEN3_8B) == 2 * 36 * 8 * 128 * 2  # 144 KiB per token in bf16
    e = P.engine_share(cfg, QWEN3_8B, 8_190_735_360, GPUS["h200"])
    assert e.budget_gib == pytest.approx(0.4 * 143_771 / 1024)
    assert e.weights_gib == pytest.approx(2 * 8_190_735_360 / 2**30)
    assert e.window == 32_768 + 4_096 and e.kv_per_sequence_gib == pytest.approx(36_864 * 147_456 / 2**30)


@pytest.mark.slow
@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_preset_fits(name):
    """The preset's real update at its largest micro-batch and world size fits the H200 it is written
    for; whether it also fits an H100 is pinned (FITS_H100)."""
    cfg = _preset(name)
    p = P.plan(cfg, name, world=8, gpu="h200", flops=False)
    assert p.tokens == cfg.max_tokens_per_micro_batch == 36_864
    assert p.fits, P.render(p)
    assert P.for_gpu(p, cfg, "h100").fits == FITS_H100[name], P.render(P.for_gpu(p, cfg, "h100"))


def test_bad_input_is_one_line_and_exit_2(capsys):
    preset = str(ROOT / "training/configs/qwen3-8b-dapo.yaml")
    assert main(["train", "--config", preset, "--plan", "--world", "6"]) == 2
    assert "prompts_per_step=32 cannot be split over 6 processes" in capsys.readouterr().err
    assert main(["train", "--config", preset, "model=NoSuchOrg/NoSuchModel", "--plan"]) == 2
    err = capsys.readouterr().err
    assert "no config.json offline" in err and "tasks/model_configs/NoSuchOrg/NoSuchModel/config.json" in err
    assert main(["train", "--config", preset, "--plan", "--gpu", "lots"]) == 2
    assert "--gpu: expected h200, h100 or a number of GiB" in capsys.readouterr().err


def test_a_plan_that_does_not_fit_names_the_knob():
    cfg = _preset("qwen3-8b-dapo")
    engine = P.engine_share(cfg, QWEN3_8B, 8_190_735_360, 80.0)
    p = P.TrainPlan("qwen3-8b-dapo", cfg.model, 8_190_735_360, 8, 36_864, 4_096,
                    {"Activation": 20.0, "Temp": 21.0, "OptState": 7.6, "Sharded Param": 3.8}, 0.0, 0.0, 64, 0.0,
                    "80 GiB", 80.0, 0.4, engine)
    assert not p.fits
    with pytest.raises(P.UserError, match=r"does not fit one GPU of 80\.0 GiB .*: needs 91\.6 GiB, 11\.6 GiB over; "
                       r"max_tokens_per_micro_batch=26624 \(now 36864\) would fit"):
        P.refuse_unless_fits(p)
    with pytest.raises(P.UserError, match=r"less than one 36,864-token sequence"):
        P.refuse_unless_fits(P.for_gpu(p, cfg, "24"))
