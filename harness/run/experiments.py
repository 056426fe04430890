"""An experiment manifest (`longact experiment` writes `<out_dir>/experiment.json`) as the input
of `longact eval --experiment` and `longact compare --experiment`.

Each arm's evaluation goes to the run id `<experiment dir name>-<arm>`, so rerunning the same eval
command resumes it, and compare finds the runs again without being told their directories.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import UserError


def read_manifest(path: str | Path) -> dict[str, str]:
    """Arm name -> checkpoint directory, in the manifest's order (baseline first)."""
    p = Path(path)
    if p.is_dir():
        p = p / "experiment.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: no experiment manifest (write one with `longact experiment --config ...`)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e})") from None
    arms = data.get("arms") if isinstance(data, dict) else None
    if not isinstance(arms, dict) or not arms:
        raise UserError(f"{p}: expected an object with a non-empty 'arms' mapping (arm -> {{checkpoint: DIR}})")
    out = {}
    for name, arm in arms.items():
        ckpt = arm.get("checkpoint") if isinstance(arm, dict) else None
        if not isinstance(ckpt, str) or not ckpt:
            raise UserError(f"{p}: arms.{name}.checkpoint: expected a checkpoint directory")
        if not Path(ckpt).is_dir():
            raise UserError(f"{p}: arms.{name}.checkpoint: {ckpt} does not exist (moved? rerun the experiment)")
        out[name] = ckpt
    return out


def arm_run_id(manifest: str | Path, arm: str) -> str:
    p = Path(manifest)
    return f"{(p if p.is_dir() else p.parent).resolve().name}-{arm}"


def arm_runs(manifest: str | Path, results_dir: str | Path) -> dict[str, Path]:
    """Arm -> its finished run directory under `results_dir`; a clear error names missing ones."""
    from harness.records.io import load_run

    runs, missing = {}, []
    for arm in read_manifest(manifest):
        run_dir = Path(results_dir) / arm_run_id(manifest, arm)
        if (run_dir / "run.json").exists() and load_run(run_dir).status == "complete":
            runs[arm] = run_dir
        else:
            missing.append(f"{arm} ({run_dir})")
    if missing:
        raise UserError(f"no finished evaluation for arm(s) {', '.join(missing)}; run "
                        f"`longact eval --experiment {manifest} --output-dir {results_dir} --tasks ...` first")
    return runs
