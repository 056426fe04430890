"""An experiment manifest (`longact experiment` writes `<out_dir>/experiment.json`) as the input
of `longact eval --experiment` and `longact compare --experiment`.

Each (arm, seed) evaluation goes to the run id `<experiment dir name>-<arm>-s<seed>` (and
`...-step<N>` for intermediate checkpoints), so rerunning the same eval command resumes it, and
compare finds the runs again without being told their directories. Manifests written before seeds
existed (one checkpoint per arm) read as seed 0 with run ids `<experiment>-<arm>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from tasks import trainer_layout


@dataclass(frozen=True)
class ArmRun:
    arm: str
    seed: int
    checkpoint: str
    step: int | None = None
    """None for the run's final checkpoint, N for an intermediate `step-N`."""
    legacy: bool = False
    """From a manifest without seeds (its run ids carry no seed)."""


def manifest_data(path: str | Path):
    """The parsed manifest, or one clear error: missing, or not JSON."""
    p = trainer_layout.manifest_path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: no experiment manifest (write one with `longact experiment --config ...`)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e})") from None


def read_manifest(path: str | Path, all_steps: bool = False, need_checkpoints: bool = True) -> list[ArmRun]:
    """Every (arm, seed) final checkpoint in the manifest's order (baseline first); with
    `all_steps`, every saved checkpoint of each run, in step order, the final one last. Reports
    (`need_checkpoints=False`) read only results, so a committed copy of a manifest whose
    checkpoints stayed on another machine serves them too."""
    p = trainer_layout.manifest_path(path)
    data = manifest_data(path)
    arms = data.get("arms") if isinstance(data, dict) else None
    if not isinstance(arms, dict) or not arms:
        raise UserError(f"{p}: expected an object with a non-empty 'arms' mapping (arm -> {{checkpoint: DIR}})")
    out = []
    for name, arm in arms.items():
        if not isinstance(arm, dict):
            raise UserError(f"{p}: arms.{name}: expected an object")
        seeds = arm.get("seeds") or {"0": {"checkpoint": arm.get("checkpoint")}}
        for seed, run in seeds.items():
            ckpt = run.get("checkpoint") if isinstance(run, dict) else None
            where = f"arms.{name}" + (f".seeds.{seed}" if "seeds" in arm else "")
            if not isinstance(ckpt, str) or not ckpt:
                raise UserError(f"{p}: {where}.checkpoint: expected a checkpoint directory")
            if need_checkpoints and not Path(ckpt).is_dir():
                raise UserError(f"{p}: {where}.checkpoint: {ckpt} does not exist (moved? rerun the experiment)")
            if all_steps:
                final = Path(ckpt).resolve()
                for step, step_dir in sorted((run.get("steps") or {}).items(), key=lambda kv: int(kv[0])):
                    if Path(step_dir).resolve() != final:
                        out.append(ArmRun(name, int(seed), step_dir, int(step), "seeds" not in arm))
            out.append(ArmRun(name, int(seed), ckpt, None, "seeds" not in arm))
    return out


def arm_run_id(manifest: str | Path, run: ArmRun) -> str:
    p = Path(manifest)
    base = f"{(p if p.is_dir() else p.parent).resolve().name}-{run.arm}"
    base += "" if run.legacy else f"-s{run.seed}"
    return base + (f"-step{run.step}" if run.step is not None else "")


def arm_runs(manifest: str | Path, results_dir: str | Path) -> dict[tuple[str, int], Path]:
    """(arm, seed) -> its finished run directory under `results_dir`; a clear error names missing ones."""
    from harness.records.io import load_run

    runs, missing = {}, []
    for run in read_manifest(manifest, need_checkpoints=False):
        run_dir = Path(results_dir) / arm_run_id(manifest, run)
        if (run_dir / "run.json").exists() and load_run(run_dir).status == "complete":
            runs[(run.arm, run.seed)] = run_dir
        else:
            missing.append(f"{run.arm} seed {run.seed} ({run_dir})")
    if missing:
        raise UserError(f"no finished evaluation for {', '.join(missing)}; run "
                        f"`longact eval --experiment {manifest} --output-dir {results_dir} --tasks ...` first")
    return runs


def run_dirs(manifest: str | Path) -> dict[tuple[str, int], Path]:
    """(arm, seed) -> the training run's directory (its final checkpoint's parent, which holds
    metrics.jsonl); where the checkpoints are not on this machine, `<arm>/seed-<s>/` beside the
    manifest (where a study commits each run's metrics.jsonl)."""
    here = trainer_layout.manifest_path(manifest).parent
    out = {}
    for run in read_manifest(manifest, need_checkpoints=False):
        run_dir = trainer_layout.run_dir_of(run.checkpoint)
        out[(run.arm, run.seed)] = run_dir if run_dir.is_dir() else here / run.arm / f"seed-{run.seed}"
    return out


def manifest_complete(manifest: str | Path) -> bool:
    """False while `longact experiment` is still training (it rewrites the manifest after every run
    with "complete": false); manifests written before that flag existed were written at the end."""
    data = manifest_data(manifest)
    return bool(data.get("complete", True)) if isinstance(data, dict) else True


def base_model(manifest: str | Path) -> str | None:
    """The checkpoint the experiment's arms started from (its config's `model`), resolved."""
    data = manifest_data(manifest)
    model = (data.get("config") or {}).get("model") if isinstance(data, dict) else None
    return str(Path(model).resolve()) if isinstance(model, str) and model and Path(model).exists() else None
