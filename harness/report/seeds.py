"""Arms trained at several seeds: the difference from the baseline arm with an interval that
counts both sources of noise, the training seed and the evaluation items.

Scores are `[seed][stratum][item]` arrays per arm, with the same seeds (a seed drives both arms'
data order and sampling, so arms pair by seed) and the same items in each stratum (a column's
tasks, as in harness/report/stats.py; the cell is the mean of stratum means).

* `hierarchical_bootstrap`: resample seeds with replacement (the same draw for both arms), then
  items with replacement within each drawn seed and stratum (the same items for both arms); the
  percentile interval of the difference of the arms' means over seeds.
* `seed_sign_flip`: the exact two-sided sign-flip test on the per-seed differences (2^S sign
  patterns): with S seeds its smallest p-value is 2 / 2^S, so three seeds can never reach p < 0.25.
  It answers "is the arm better at every seed?", the question the seed count limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.report.stats import stratum_mean


@dataclass(frozen=True)
class SeedResult:
    delta: float
    """Mean over seeds of (arm − baseline), each seed's score the mean of its stratum means."""
    low: float
    high: float
    p_value: float
    """Exact seed-level sign-flip p-value."""
    per_seed: tuple[float, ...]
    """The per-seed differences."""
    n_seeds: int
    n_items: int
    detectable: float = float("nan")
    """Smallest mean difference this comparison could have detected (80% power, two-sided 5%):
    from the spread of the per-seed differences with two seeds or more that differ, else from the
    items' discordance, pooled over the seeds (harness/report/power.py)."""
    detectable_basis: str = ""


def hierarchical_bootstrap(base: list[list], arm: list[list], n_resamples: int = 2000, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean_seeds(arm) − mean_seeds(base); `base[s][k]` are the items of
    stratum k at seed s (paired with `arm[s][k]` item by item)."""
    rng = np.random.default_rng(seed)
    a = [[np.asarray(k, dtype=float) for k in s] for s in base]
    b = [[np.asarray(k, dtype=float) for k in s] for s in arm]
    n_seeds = len(a)
    out = np.empty(n_resamples)
    for r in range(n_resamples):
        seeds = rng.integers(0, n_seeds, n_seeds)
        diffs = []
        for s in seeds:
            strata = []
            for ka, kb in zip(a[s], b[s]):
                idx = rng.integers(0, len(ka), len(ka))
                strata.append(kb[idx].mean() - ka[idx].mean())
            diffs.append(np.mean(strata))
        out[r] = np.mean(diffs)
    alpha = (1 - level) / 2
    return float(np.quantile(out, alpha)), float(np.quantile(out, 1 - alpha))


def seed_sign_flip(diffs: list[float]) -> float:
    """Exact two-sided p-value of the mean per-seed difference under sign symmetry: scipy's
    one-sample permutation test flips signs, and n_resamples=inf enumerates all 2^S patterns."""
    from scipy.stats import permutation_test

    if len(diffs) < 2:  # scipy needs two values; with one seed, +d and -d are both as extreme
        return 1.0
    return float(permutation_test((np.asarray(diffs, dtype=float),), np.mean, permutation_type="samples",
                                  n_resamples=np.inf, vectorized=True).pvalue)


def compare_seeds(base: list[list], arm: list[list], n_resamples: int = 2000, seed: int = 0) -> SeedResult:
    if len(base) != len(arm) or not base:
        raise ValueError(f"both arms need the same seeds (got {len(base)} and {len(arm)})")
    per_seed = tuple(stratum_mean([np.asarray(k, float) for k in b]) - stratum_mean([np.asarray(k, float) for k in a])
                     for a, b in zip(base, arm))
    from harness.report.power import seeds_detectable, strata_effect

    low, high = hierarchical_bootstrap(base, arm, n_resamples, seed)
    if len(per_seed) >= 2 and np.std(per_seed) > 0:
        detect = seeds_detectable(list(per_seed))
    else:  # one seed, or seeds that all agree (a spread of 0 says nothing): the items, every seed's pooled
        detect = strata_effect([np.concatenate([np.asarray(arm[s][k], float) - np.asarray(base[s][k], float)
                                                for s in range(len(base))]) for k in range(len(base[0]))])
    return SeedResult(float(np.mean(per_seed)), low, high, seed_sign_flip(list(per_seed)), per_seed,
                      len(base), sum(len(k) for k in base[0]), detect.effect, detect.basis)
