"""The controlled study: baseline (no mask) and LongAct, plus optional controls, at one or more
seeds, from one config.

Every arm gets the same config, data order and rollout budget at a given seed; only
`mask.strategy` differs. The seed drives data order, sampling and the random control's mask, so
arms pair by seed. Writes <out_dir>/experiment.json:

    {"config": {...}, "seeds": [0, 1], "complete": true,
     "arms": {"baseline": {"mask_strategy": "none",
                           "checkpoint": "<seed 0's final checkpoint>",
                           "seeds": {"0": {"checkpoint": ".../baseline/seed-0/step-8", "mask_hash": "...",
                                           "steps": {"4": ".../step-4", "8": ".../step-8"}}, ...}}, ...}}

`steps` lists every checkpoint a run saved (`save_every`), for evaluation against training step.
The manifest is rewritten after every run with the runs finished so far and `"complete": false`
until the last one ends, so evaluation can start on the finished runs while the others train.
Checkpoints go to <out_dir>/<arm>/seed-<s>/; a rerun resumes each run from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tasks import trainer_layout
from tasks.errors import UserError
from training import checkpoint, mask_report, parallel
from training.checkpoint import MASK_SUBDIR
from training.config import TrainConfig
from training.mask import STRATEGIES
from training.train import train


@dataclass(frozen=True)
class Arm:
    """One arm of the study: the mask it trains with and the seeds it trains at."""
    strategy: str
    keep_ratio: float
    seeds: tuple[int, ...]


def ratio_arm(ratio: float) -> str:
    """The name of the LongAct arm at another keep ratio (`--ratios`): longact-r0.1."""
    return f"longact-r{ratio:g}"


def parse_ratios(text: str, keep_ratio: float) -> list[float]:
    """`--ratios 0.1,0.5` -> [0.1, 0.5]: fractions in (0, 1], none repeated, none equal to the
    config's own `mask.keep_ratio` (that is the `longact` arm)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            r = float(part)
        except ValueError:
            raise UserError(f"--ratios: {part!r} is not a number; expected fractions in (0, 1], e.g. 0.1,0.5") from None
        if not 0.0 < r <= 1.0:
            raise UserError(f"--ratios: {r:g} is outside (0, 1]; a ratio is the fraction of Q/K rows updated")
        if r == keep_ratio:
            raise UserError(f"--ratios: {r:g} is the config's mask.keep_ratio, which the `longact` arm trains already")
        if r in out:
            raise UserError(f"--ratios: {r:g} given twice")
        out.append(r)
    return out


def arms_of(controls: list[str], ratios: list[float] = (), keep_ratio: float = 0.3,
            seeds: list[int] = (0,), ablation_seeds: list[int] | None = None) -> dict[str, Arm]:
    """baseline and longact at every seed; each control (same ratio) and each extra ratio at the
    `ablation_seeds` (default: every seed). Arms at one seed pair with the baseline at that seed."""
    seeds = tuple(seeds)
    extra = tuple(ablation_seeds) if ablation_seeds else seeds
    stray = [s for s in extra if s not in seeds]
    if stray:
        raise UserError(f"--ablation-seeds: {stray} not in --seeds {list(seeds)} (an ablation arm pairs with "
                        "the baseline at its seed)")
    arms = {"baseline": Arm("none", keep_ratio, seeds), "longact": Arm("longact", keep_ratio, seeds)}
    for c in controls:
        if c not in STRATEGIES or c in ("none", "longact"):
            raise UserError(f"--controls: unknown {c!r}, expected any of random, bottom, q_only, k_only")
        arms[c] = Arm(c, keep_ratio, extra)
    for r in ratios:
        arms[ratio_arm(r)] = Arm("longact", r, extra)
    return arms


def _write_manifest(path: Path, manifest: dict) -> None:
    if parallel.is_main_process():  # under torchrun every rank trained; one writes the manifest
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        tmp.replace(path)


def saved_steps(run_dir: Path) -> dict[str, str]:
    return {str(trainer_layout.step_of(p)): str(p.resolve()) for p in checkpoint.saved(run_dir)}


def run_experiment(cfg: TrainConfig, controls: list[str] = (), log=print, seeds: list[int] | None = None,
                   ratios: list[float] = (), ablation_seeds: list[int] | None = None) -> Path:
    seeds = list(seeds) if seeds else [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: repeated seeds in {seeds}")
    arms = arms_of(list(controls), list(ratios), cfg.mask.keep_ratio, seeds, ablation_seeds)
    root = Path(cfg.out_dir)
    manifest = {"config": dataclasses.asdict(cfg), "seeds": seeds, "complete": False, "arms": {}}
    path = root / trainer_layout.MANIFEST_FILE
    for name, arm in arms.items():
        runs = {}
        for seed in arm.seeds:
            arm_cfg = dataclasses.replace(cfg, out_dir=str(trainer_layout.arm_seed_dir(root, name, seed)), seed=seed,
                                          mask=dataclasses.replace(cfg.mask, strategy=arm.strategy,
                                                                   keep_ratio=arm.keep_ratio))
            log(f"[{name} seed {seed}] mask.strategy={arm.strategy} keep_ratio={arm.keep_ratio:g}")
            t0 = time.perf_counter()
            ckpt = train(arm_cfg, log=log)
            runs[str(seed)] = {"checkpoint": str(ckpt.resolve()), "wall_s": round(time.perf_counter() - t0, 1),
                               "mask_hash": json.loads((ckpt / MASK_SUBDIR / "mask.json").read_text())["hash"],
                               "steps": saved_steps(Path(arm_cfg.out_dir))}
            manifest["arms"][name] = {"mask_strategy": arm.strategy, "keep_ratio": arm.keep_ratio,
                                      "checkpoint": runs[str(arm.seeds[0])]["checkpoint"], "seeds": runs}
            # After every run, the finished runs so far ("complete": false): `longact eval --experiment`
            # can evaluate them while the others train, and a stopped experiment still names them.
            _write_manifest(path, manifest)
    manifest["complete"] = True
    _write_manifest(path, manifest)
    if parallel.is_main_process():
        # the evidence: weights vs the start (masked rows bit-identical), reward and grad norm per step, mask spread
        ev = mask_report.evidence(cfg.model, {a: m["seeds"] for a, m in manifest["arms"].items()}, log)
        (root / mask_report.EVIDENCE_FILE).write_text(json.dumps(ev, indent=1) + "\n")
    return path
