"""The controlled study: baseline (no mask) and LongAct, plus optional controls, at one or more
seeds, from one config.

Every arm gets the same config, data order and rollout budget at a given seed; only
`mask.strategy` differs. The seed drives data order, sampling and the random control's mask, so
arms pair by seed. Writes <out_dir>/experiment.json:

    {"config": {...}, "seeds": [0, 1],
     "arms": {"baseline": {"mask_strategy": "none",
                           "checkpoint": "<seed 0's final checkpoint>",
                           "seeds": {"0": {"checkpoint": ".../baseline/seed-0/step-8", "mask_hash": "...",
                                           "steps": {"4": ".../step-4", "8": ".../step-8"}}, ...}}, ...}}

`steps` lists every checkpoint a run saved (`save_every`), for evaluation against training step.
Checkpoints go to <out_dir>/<arm>/seed-<s>/; a rerun resumes each run from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from tasks import trainer_layout
from tasks.errors import UserError
from training import checkpoint, mask_report, parallel
from training.checkpoint import MASK_SUBDIR
from training.config import TrainConfig
from training.mask import STRATEGIES
from training.train import train


def arms_of(controls: list[str]) -> dict[str, str]:
    arms = {"baseline": "none", "longact": "longact"}
    for c in controls:
        if c not in STRATEGIES or c in ("none", "longact"):
            raise UserError(f"--controls: unknown {c!r}, expected any of random, bottom, q_only, k_only")
        arms[c] = c
    return arms


def saved_steps(run_dir: Path) -> dict[str, str]:
    return {str(trainer_layout.step_of(p)): str(p.resolve()) for p in checkpoint.saved(run_dir)}


def run_experiment(cfg: TrainConfig, controls: list[str] = (), log=print, seeds: list[int] | None = None) -> Path:
    arms = arms_of(list(controls))
    seeds = list(seeds) if seeds else [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: repeated seeds in {seeds}")
    root = Path(cfg.out_dir)
    manifest = {"config": dataclasses.asdict(cfg), "seeds": seeds, "arms": {}}
    for name, strategy in arms.items():
        runs = {}
        for seed in seeds:
            arm_cfg = dataclasses.replace(cfg, out_dir=str(trainer_layout.arm_seed_dir(root, name, seed)), seed=seed,
                                          mask=dataclasses.replace(cfg.mask, strategy=strategy))
            log(f"[{name} seed {seed}] mask.strategy={strategy}")
            t0 = time.perf_counter()
            ckpt = train(arm_cfg, log=log)
            runs[str(seed)] = {"checkpoint": str(ckpt.resolve()), "wall_s": round(time.perf_counter() - t0, 1),
                               "mask_hash": json.loads((ckpt / MASK_SUBDIR / "mask.json").read_text())["hash"],
                               "steps": saved_steps(Path(arm_cfg.out_dir))}
        manifest["arms"][name] = {"mask_strategy": strategy, "checkpoint": runs[str(seeds[0])]["checkpoint"],
                                  "seeds": runs}
    path = trainer_layout.manifest_path(root)
    if parallel.is_main_process():  # under torchrun every rank trained; one writes the manifest
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        tmp.replace(path)
        # the evidence: weights vs the start (masked rows bit-identical), reward and grad norm per step, mask spread
        ev = mask_report.evidence(cfg.model, {a: m["seeds"] for a, m in manifest["arms"].items()}, log)
        (root / mask_report.EVIDENCE_FILE).write_text(json.dumps(ev, indent=1) + "\n")
    return path
