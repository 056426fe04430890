"""Seed-aggregated comparisons: hand-computed values, and the interval's coverage on synthetic
data with a known effect (seed-level and item-level noise, as a training seed and an eval set
produce)."""

import numpy as np
import pytest

from harness.report.seeds import compare_seeds, hierarchical_bootstrap, seed_sign_flip


def test_sign_flip_exact_values():
    assert seed_sign_flip([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)   # only all-plus and all-minus reach |mean| 2
    assert seed_sign_flip([1.0, -1.0]) == 1.0
    assert seed_sign_flip([2.0, 1.0]) == pytest.approx(2 / 4)


def test_per_seed_differences_are_means_of_stratum_means():
    base = [[[0, 0, 100, 100], [0, 100]], [[0, 0, 0, 0], [100, 100]]]
    arm = [[[100, 0, 100, 100], [0, 100]], [[0, 0, 0, 100], [100, 100]]]
    res = compare_seeds(base, arm, n_resamples=200)
    # seed 0: ((75 + 50) / 2) - ((50 + 50) / 2) = 12.5 ; seed 1: ((25 + 100) / 2) - ((0 + 100) / 2) = 12.5
    assert res.per_seed == pytest.approx((12.5, 12.5)) and res.delta == pytest.approx(12.5)
    assert res.n_seeds == 2 and res.n_items == 6 and res.p_value == pytest.approx(0.5)


def _simulate(rng, effect, n_seeds, n_items, seed_sd, item_sd):
    """Per-item scores: an item difficulty shared by all runs, a training-seed offset per run,
    and noise per (run, item)."""
    difficulty = rng.normal(50, 15, n_items)
    base, arm = [], []
    for _ in range(n_seeds):
        base.append([difficulty + rng.normal(0, seed_sd) + rng.normal(0, item_sd, n_items)])
        arm.append([difficulty + effect + rng.normal(0, seed_sd) + rng.normal(0, item_sd, n_items)])
    return base, arm


@pytest.mark.parametrize("n_seeds", [8, 12])
def test_hierarchical_interval_covers_a_known_effect(n_seeds):
    rng = np.random.default_rng(7)
    effect, hits, sims = 3.0, 0, 150
    for i in range(sims):
        base, arm = _simulate(rng, effect, n_seeds, 60, seed_sd=2.0, item_sd=10.0)
        low, high = hierarchical_bootstrap(base, arm, n_resamples=300, seed=i)
        hits += low <= effect <= high
    coverage = hits / sims
    # Percentile intervals over few clusters run a little narrow; far from 95% would be a bug
    # (items alone, ignoring seeds, cover ~60% here).
    assert 0.85 <= coverage <= 0.99, coverage


def test_ignoring_seeds_would_undercover():
    """The reason for resampling seeds: with seed noise, an items-only bootstrap is too narrow."""
    rng = np.random.default_rng(3)
    effect, hits, sims = 3.0, 0, 150
    for i in range(sims):
        base, arm = _simulate(rng, effect, 8, 60, seed_sd=2.0, item_sd=10.0)
        r = np.random.default_rng(i)
        means = []
        for _ in range(300):  # items resampled, seeds fixed
            d = []
            for a, b in zip(base, arm):
                idx = r.integers(0, 60, 60)
                d.append(b[0][idx].mean() - a[0][idx].mean())
            means.append(np.mean(d))
        hits += np.quantile(means, 0.025) <= effect <= np.quantile(means, 0.975)
    assert hits / sims < 0.85
