"""Paired bootstrap speed: 20 runs x 10,000 samples x 1,000 resamples against one baseline.

    python bench/compare.py

Goal: <= 2 s on 2 cores (vectorised). Prints the total and per-run time, the same bootstrap
resampling item indices (the path continuous scores take) for the ratio, and the time of the
exact McNemar and sign-flip tests on the same data.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.figures import record_figure  # noqa: E402
from harness.report import stats  # noqa: E402
from harness.report.stats import mcnemar_exact, paired_bootstrap, paired_permutation  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random(10_000) < 0.4) * 100.0
    runs = [(rng.random(10_000) < 0.4 + 0.005 * k) * 100.0 for k in range(20)]
    t0 = time.perf_counter()
    intervals = [paired_bootstrap(r - base, n_resamples=1000, seed=k) for k, r in enumerate(runs)]
    boot = time.perf_counter() - t0
    stats.MAX_DISTINCT, saved = 0, stats.MAX_DISTINCT  # force item-index resampling
    t0 = time.perf_counter()
    for k, r in enumerate(runs):
        paired_bootstrap(r - base, n_resamples=1000, seed=k)
    by_index = time.perf_counter() - t0
    stats.MAX_DISTINCT = saved
    t0 = time.perf_counter()
    ps = [mcnemar_exact(base, r) for r in runs]
    mc = time.perf_counter() - t0
    t0 = time.perf_counter()
    perm = [paired_permutation(r - base, n_resamples=1000, seed=k) for k, r in enumerate(runs)]
    pt = time.perf_counter() - t0
    print(f"paired bootstrap, 20 runs x 10,000 samples x 1,000 resamples: {boot:.2f} s "
          f"({boot / 20 * 1000:.1f} ms per run; goal <= 2 s)")
    print(f"same, resampling item indices: {by_index:.2f} s ({by_index / boot:.0f}x the counting path)")
    print(f"exact McNemar, 20 runs: {mc * 1000:.1f} ms; sign-flip permutation (1,000), 20 runs: {pt:.2f} s")
    print(f"example: run 19 delta {np.mean(runs[19] - base):+.2f}, 95% CI [{intervals[19][0]:+.2f}, {intervals[19][1]:+.2f}], "
          f"McNemar p {ps[19]:.2g}, permutation p {perm[19]:.2g}")
    record_figure("compare.bootstrap_s", round(boot, 3), "s", "counting resampled values (multinomial)")
    record_figure("compare.by_index_ratio", round(by_index / boot, 1), "x")
    record_figure("compare.mcnemar_s", round(mc, 3), "s")
    record_figure("compare.sign_flip_s", round(pt, 3), "s")


if __name__ == "__main__":
    main()
