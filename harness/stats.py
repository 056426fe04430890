"""Paired statistics for checkpoint comparisons, vectorised with numpy.

Scores are per-item values on the same items for two runs (percent, 0/100 for exact-match
metrics; per-item means under mean@k). Items can be split into strata (the tasks of a group):
a group's score is the unweighted mean of its tasks' means, so the bootstrap resamples items
within each task and averages the task means, and the sign-flip test flips within tasks.

* `paired_bootstrap`: percentile interval of the difference (B - A) of the (stratified) means.
* `mcnemar_exact`: two-sided exact McNemar test (binomial on the discordant pairs) for 0/1 data.
* `paired_permutation`: two-sided sign-flip permutation test on the per-item differences.
* `paired_test`: McNemar when every value is 0 or the maximum (0/1 or 0/100), else permutation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedResult:
    delta: float
    low: float
    high: float
    p_value: float
    test: str
    n: int


def _strata(diffs) -> list[np.ndarray]:
    if isinstance(diffs, np.ndarray) or (diffs and np.isscalar(diffs[0])):
        return [np.asarray(diffs, dtype=float)]
    return [np.asarray(d, dtype=float) for d in diffs if len(d)]


def stratified_mean(diffs) -> float:
    return float(np.mean([d.mean() for d in _strata(diffs)]))


def paired_bootstrap(diffs, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """(low, high) percentile interval of the stratified mean difference."""
    rng = np.random.default_rng(seed)
    strata = _strata(diffs)
    boot = np.zeros(n_resamples)
    for d in strata:
        idx = rng.integers(0, len(d), size=(n_resamples, len(d)))
        boot += d[idx].mean(axis=1)
    boot /= len(strata)
    return float(np.quantile(boot, alpha / 2)), float(np.quantile(boot, 1 - alpha / 2))


def mcnemar_exact(a, b) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (any two-valued scale)."""
    from scipy.stats import binom

    a, b = np.asarray(a, dtype=float) > 0, np.asarray(b, dtype=float) > 0
    n01, n10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    n = n01 + n10
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(n01, n10), n, 0.5)))


def paired_permutation(diffs, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip p-value of the stratified mean difference, (hits + 1) / (R + 1)."""
    rng = np.random.default_rng(seed)
    strata = _strata(diffs)
    observed = abs(np.mean([d.mean() for d in strata]))
    total = np.zeros(n_resamples)
    for d in strata:
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, len(d)))
        total += (signs * d).mean(axis=1)
    total = np.abs(total / len(strata))
    return float((np.sum(total >= observed - 1e-12) + 1) / (n_resamples + 1))


def is_binary(*arrays) -> bool:
    """Every value is 0 or one common maximum (0/1 or 0/100 scores)."""
    values = set()
    for arr in arrays:
        for a in arr:
            values.update(np.unique(np.asarray(a, dtype=float)).tolist())
    return len(values - {0.0}) <= 1


def paired_test(a_strata, b_strata, n_resamples: int = 1000, seed: int = 0) -> PairedResult:
    """Compare B against A on paired items (lists of per-stratum arrays, same order)."""
    a_strata, b_strata = _strata(a_strata), _strata(b_strata)
    diffs = [b - a for a, b in zip(a_strata, b_strata)]
    low, high = paired_bootstrap(diffs, n_resamples=n_resamples, seed=seed)
    if len(diffs) == 1 and is_binary(a_strata, b_strata):
        p, test = mcnemar_exact(a_strata[0], b_strata[0]), "mcnemar"
    else:
        p, test = paired_permutation(diffs, n_resamples=max(n_resamples, 2000), seed=seed), "permutation"
    return PairedResult(stratified_mean(diffs), low, high, p, test, int(sum(len(d) for d in diffs)))
