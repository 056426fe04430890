"""The controlled pair: baseline (no mask) and LongAct, plus optional controls, from one config.

Every arm gets the same config, seed, data order and rollout budget; only `mask.strategy` differs.
Writes <out_dir>/experiment.json: arm name -> checkpoint directory (plain HF safetensors).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from training import parallel
from training.checkpoint import MASK_SUBDIR
from training.config import TrainConfig
from training.mask import STRATEGIES
from training.train import train


def run_experiment(cfg: TrainConfig, controls: list[str] = (), log=print) -> Path:
    arms = {"baseline": "none", "longact": "longact"}
    for c in controls:
        if c not in STRATEGIES or c in ("none", "longact"):
            raise ValueError(f"--controls: unknown {c!r}, expected any of random, bottom, q_only, k_only")
        arms[c] = c
    root = Path(cfg.out_dir)
    manifest = {"config": dataclasses.asdict(cfg), "arms": {}}
    for name, strategy in arms.items():
        arm_cfg = dataclasses.replace(cfg, out_dir=str(root / name),
                                      mask=dataclasses.replace(cfg.mask, strategy=strategy))
        log(f"[{name}] mask.strategy={strategy}")
        ckpt = train(arm_cfg, log=log)
        manifest["arms"][name] = {"checkpoint": str(ckpt.resolve()), "mask_strategy": strategy,
                                  "mask_hash": json.loads((ckpt / MASK_SUBDIR / "mask.json").read_text())["hash"]}
    path = root / "experiment.json"
    if parallel.is_main_process():  # under torchrun every rank trained; one writes the manifest
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        tmp.replace(path)
    return path
