"""Paired statistics for checkpoint comparisons, vectorised with numpy.

Scores are per-item values on the same items for two runs (percent, 0/100 for exact-match
metrics; per-item means under mean@k). Items can be split into strata (the tasks of a group):
a group's score is the unweighted mean of its tasks' means, so the bootstrap resamples items
within each task and averages the task means, and the sign-flip test flips within tasks.

* `paired_bootstrap`: percentile interval of the difference (B - A) of the (stratified) means.
* `mcnemar_exact`: two-sided exact McNemar test (binomial on the discordant pairs) for 0/1 data.
* `paired_permutation`: two-sided sign-flip permutation test on the per-item differences.
* `paired_test`: McNemar when every value is 0 or the maximum (0/1 or 0/100), else permutation.

Speed: scores of exact-match metrics (and their mean@k) take a handful of distinct values, and a
resample's mean depends only on how often it draws each value. For such strata the bootstrap
draws those counts from a multinomial and the sign-flip test draws, per distinct |difference|,
how many of its items keep their sign from a binomial: the same distributions as resampling
item by item, at a cost independent of the number of items (20 runs x 10,000 items x 1,000
resamples: milliseconds instead of seconds). Continuous scores resample item indices.
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
    p_floor: float | None = None
    """Smallest p-value the test can report: 1/(R+1) for a permutation test of R resamples (a
    p-value there means no resample was as extreme), None for exact tests."""
    detectable: float = float("nan")
    """Smallest difference these items could have detected (80% power, two-sided 5%), from their
    discordance (harness/report/power.py); inf when no item differs."""


def _strata(diffs) -> list[np.ndarray]:
    if isinstance(diffs, np.ndarray) or (diffs and np.isscalar(diffs[0])):
        return [np.asarray(diffs, dtype=float)]
    return [np.asarray(d, dtype=float) for d in diffs if len(d)]


# Above this many distinct values per stratum, resampling item indices is as cheap as counting.
MAX_DISTINCT = 64


def _distinct(d: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, counts) when the stratum has few distinct values, else None."""
    values, counts = np.unique(d, return_counts=True)
    return (values, counts) if len(values) <= MAX_DISTINCT else None


def _resampled_means(d: np.ndarray, n_resamples: int, rng) -> np.ndarray:
    """Means of `n_resamples` bootstrap resamples (with replacement) of one stratum."""
    few = _distinct(d)
    if few is not None:
        values, counts = few
        drawn = rng.multinomial(len(d), counts / len(d), size=n_resamples)  # (R, distinct values)
        return drawn @ values / len(d)
    idx = rng.integers(0, len(d), size=(n_resamples, len(d)))              # (R, items)
    return d[idx].mean(axis=1)


def _sign_flipped_means(d: np.ndarray, n_resamples: int, rng) -> np.ndarray:
    """Means of `n_resamples` random sign flips of one stratum's differences."""
    few = _distinct(np.abs(d))
    if few is not None:
        values, counts = few
        kept = rng.binomial(counts, 0.5, size=(n_resamples, len(values)))   # (R, distinct |d|): signs kept +
        return (2 * kept - counts) @ values / len(d)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, len(d)))  # (R, items)
    return (signs * np.abs(d)).mean(axis=1)


def stratum_mean(strata) -> float:
    """The mean of the stratum means (strata[k]: the values of stratum k), so that each stratum
    (a task, a context length) counts once whatever its number of items: a run's cell in every
    table, and the paired difference the tests are about."""
    return float(np.mean([np.mean(s) for s in strata]))


def stratified_mean(diffs) -> float:
    return stratum_mean(_strata(diffs))


def paired_bootstrap(diffs, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """(low, high) percentile interval of the stratified mean difference."""
    rng = np.random.default_rng(seed)
    strata = _strata(diffs)
    boot = np.zeros(n_resamples)
    for d in strata:
        boot += _resampled_means(d, n_resamples, rng)
    boot /= len(strata)
    return float(np.quantile(boot, alpha / 2)), float(np.quantile(boot, 1 - alpha / 2))


def mcnemar_exact(a, b) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (any two-valued scale)."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=float) > 0, np.asarray(b, dtype=float) > 0
    n01, n10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    if n01 + n10 == 0:  # binomtest needs a trial; with no discordant pair nothing differs
        return 1.0
    return float(binomtest(n01, n01 + n10, 0.5).pvalue)


def paired_permutation(diffs, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip p-value of the stratified mean difference, (hits + 1) / (R + 1)."""
    rng = np.random.default_rng(seed)
    strata = _strata(diffs)
    observed = abs(np.mean([d.mean() for d in strata]))
    total = np.zeros(n_resamples)
    for d in strata:
        total += _sign_flipped_means(d, n_resamples, rng)
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
        p, test, floor = mcnemar_exact(a_strata[0], b_strata[0]), "mcnemar", None
    else:
        resamples = max(n_resamples, 2000)
        p, test = paired_permutation(diffs, n_resamples=resamples, seed=seed), "permutation"
        floor = 1 / (resamples + 1)
    from harness.report.power import strata_effect

    return PairedResult(stratified_mean(diffs), low, high, p, test, int(sum(len(d) for d in diffs)), floor,
                        strata_effect(diffs).effect)


def format_p(p: float, floor: float | None = None) -> str:
    """A p-value as text. At a permutation test's floor 1/(R+1) the estimate only says that no
    resample was as extreme, so it reads `< 1/(R+1)` (`< 0.001` for R = 999), not a value."""
    if floor is not None and p <= floor * (1 + 1e-9):
        return f"< {floor:.2g}"
    return f"{p:.3g}"
