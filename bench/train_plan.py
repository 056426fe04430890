"""`longact train --plan` for every GPU preset: per-rank peak, the planner's own run time, and the
planned update time per step, recorded in bench/figures.json.

    python bench/train_plan.py [--presets qwen3-8b-grpo,...] [--gpu h200]

Each preset is planned in its own process (the fake process group is per process), one after the
other, with the FLOP-counting passes (what `longact train --plan` prints).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("qwen3-8b-grpo", "qwen3-8b-dapo", "qwen3-4b-grpo", "qwen3-4b-dapo")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--gpu", default="h200")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.figures import record_figure

    for name in args.presets.split(","):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "longact", "train", "--config", f"training/configs/{name}.yaml",
                               "--plan", "--json", "--gpu", args.gpu], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 2) or not proc.stdout.strip():
            print(f"{name}: failed (rc {proc.returncode}) {proc.stderr.strip().splitlines()[-1:]}")
            continue
        p = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name}: trainer {p['trainer_gib']:.2f} GiB, needed {p['needed_gib']:.1f} of {p['gpu_gib']:.1f} GiB "
              f"({'fits' if p['fits'] else 'DOES NOT FIT'}), planner {wall:.1f} s wall ({p['simulated_s']:.1f} s simulating), "
              f"{p['update_seconds']:.0f} s of updates per step at {p['mfu']:.0%}", flush=True)
        key = name.replace("qwen3-", "").replace("-", "_")
        record_figure(f"train_plan.{key}_peak_gib", round(p["trainer_gib"], 2), "GiB", f"per rank, {p['gpu']}")
        record_figure(f"train_plan.{key}_s", round(wall, 1), "s", "the planner's wall time, FLOP passes included")
        record_figure(f"train_plan.{key}_update_s_per_step", round(p["update_seconds"]), "s",
                      f"planned, every row full length, {p['mfu']:.0%} of 989 TFLOPs")


if __name__ == "__main__":
    main()
