"""The trainer's output layout has one owner (tasks/trainer_layout.py): names, labels, manifests,
and one metrics reader that every report uses, checked on a real resumed run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tasks import trainer_layout as layout
from tasks.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_names_and_labels(tmp_path):
    assert layout.step_of("runs/x/step-12") == 12
    assert layout.step_of("runs/x/step-final") is None and layout.step_of("runs/x/model") is None
    assert layout.step_dir(tmp_path, 3) == tmp_path / "step-3"
    assert layout.checkpoint_label("runs/exp/longact/seed-1/step-8") == "longact/seed-1/step-8"
    assert layout.checkpoint_label("runs/exp/longact/step-8") == "longact/step-8"
    assert layout.checkpoint_label("models/tiny-qwen3") == "tiny-qwen3"
    for n in (10, 2, 1):
        layout.step_dir(tmp_path, n).mkdir()
    (tmp_path / "step-x").mkdir()
    assert [layout.step_of(p) for p in layout.step_dirs(tmp_path)] == [1, 2, 10]  # numeric order, not text


def test_a_checkpoint_finds_its_experiment_with_and_without_seeds(tmp_path):
    (tmp_path / "experiment.json").write_text("{}")
    seeded = layout.arm_seed_dir(tmp_path, "longact", 1) / "step-4"
    legacy = tmp_path / "baseline" / "step-4"
    for d in (seeded, legacy):
        d.mkdir(parents=True)
        assert layout.manifest_of_checkpoint(d) == (tmp_path / "experiment.json").resolve()
    assert layout.manifest_of_checkpoint(tmp_path / "baseline") is None
    assert layout.manifest_path(tmp_path) == tmp_path / "experiment.json"


def test_a_bad_metrics_line_names_the_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n{"reward": 0.7}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl, line 2: expected a JSON object with an integer 'step'"):
        layout.read_metrics(tmp_path)


def test_a_resumed_run_plots_each_step_once(tmp_path):
    """A real run killed after logging step 2 but before saving it: the resumed run logs step 2
    again. Every reader sees one record per step, the re-logged one (the plots' reader once kept both)."""
    from harness.report import plots
    from training.config import load_config
    from training.train import train

    cfg = ROOT / "training" / "configs" / "tiny-cpu.yaml"
    skilled = ROOT / "assets" / "tiny-qwen3-skilled"
    out = tmp_path / "run"

    def config(*extra):
        return load_config(str(cfg), [f"model={skilled}", f"out_dir={out}", "sampling.temperature=2.0", "steps=2",
                                      "save_every=1", *extra])

    train(config(), resume=False, log=lambda *_: None)
    first = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(out / "step-2")  # as if killed between logging step 2 and saving it
    final = train(config(), resume=True, log=lambda *_: None)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in first] == [1, 2] and [r["step"] for r in logged] == [1, 2, 2]

    records = layout.read_metrics(out)
    assert [r["step"] for r in records] == [1, 2] and records[1] == logged[2]
    run = SimpleNamespace(label="resumed", record=SimpleNamespace(model=SimpleNamespace(path=str(final))))
    assert plots.trainer_series([run]) == {"resumed": records}
