"""Paired statistics against hand-computed and textbook values; both resampling paths agree."""

import numpy as np
import pytest

from harness.report import stats
from harness.report.stats import mcnemar_exact, paired_bootstrap, paired_permutation, paired_test, stratified_mean


def test_mcnemar_exact_textbook():
    # 2 pairs improve, 8 get worse: p = 2 * P(X <= 2 | n=10, 1/2) = 2 * 56 / 1024
    a = [1] * 8 + [0] * 2 + [1] * 5
    b = [0] * 8 + [1] * 2 + [1] * 5
    assert mcnemar_exact(a, b) == pytest.approx(112 / 1024)
    assert mcnemar_exact([100, 0, 100], [100, 0, 100]) == 1.0          # no discordant pair
    assert mcnemar_exact([0] * 6, [100] * 6) == pytest.approx(2 / 64)  # 0/100 scale works the same


def test_bootstrap_and_permutation():
    assert paired_bootstrap(np.full(50, 2.0)) == (2.0, 2.0)
    rng = np.random.default_rng(1)
    d = rng.normal(5, 10, 400)
    low, high = paired_bootstrap(d, n_resamples=2000, seed=3)
    assert low < d.mean() < high and high - low == pytest.approx(2 * 1.96 * 10 / 20, rel=0.25)
    assert paired_bootstrap(d, seed=3) == paired_bootstrap(d, seed=3)     # seeded
    assert paired_permutation(np.zeros(30)) == 1.0
    assert paired_permutation(np.full(30, 3.0), n_resamples=999) == pytest.approx(1 / 1000)  # no flip reaches it
    assert stratified_mean([[0.0, 0.0, 0.0, 100.0], [50.0]]) == pytest.approx((25 + 50) / 2)


def test_paired_test_picks_the_test_by_scale():
    assert paired_test([[0, 100, 0]], [[100, 100, 0]]).test == "mcnemar"
    assert paired_test([[0.5, 0.2]], [[0.7, 0.1]]).test == "permutation"
    r = paired_test([[0, 0], [100]], [[100, 0], [100]])                   # strata: a group of tasks
    assert r.test == "permutation" and r.delta == pytest.approx((50 + 0) / 2) and r.n == 3


def test_mcnemar_exact_second_textbook_case():
    # b = 10 discordant pairs one way, c = 2 the other: p = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12
    a = [100] * 10 + [0] * 2 + [0] * 30
    b = [0] * 10 + [100] * 2 + [0] * 30
    assert mcnemar_exact(a, b) == pytest.approx(2 * (1 + 12 + 66) / 4096)


def test_bootstrap_of_a_two_valued_stratum_has_the_exact_quantiles():
    # [100, 0, 0, 0]: a resample's mean is 25 * K with K ~ Bin(4, 1/4). P(K = 0) = 0.316 puts the
    # 2.5% point at 0; P(K <= 2) = 0.949 < 0.975 < P(K <= 3) = 0.996 puts the 97.5% point at 75.
    assert paired_bootstrap([100.0, 0.0, 0.0, 0.0], n_resamples=4000, seed=1) == (0.0, 75.0)


def test_counting_and_item_resampling_give_the_same_distributions(monkeypatch):
    # Few distinct values go through multinomial / binomial counts; forcing MAX_DISTINCT to 0 sends
    # the same data through item-index resampling. Both estimate the same distributions.
    rng = np.random.default_rng(7)
    a = (rng.random(2000) < 0.40) * 100.0
    b = (rng.random(2000) < 0.44) * 100.0
    diffs = [b - a, (b - a)[:500]]
    fast_ci = paired_bootstrap(diffs, n_resamples=10000, seed=2)
    fast_p = paired_permutation(diffs, n_resamples=10000, seed=2)
    monkeypatch.setattr(stats, "MAX_DISTINCT", 0)
    slow_ci = paired_bootstrap(diffs, n_resamples=10000, seed=2)
    slow_p = paired_permutation(diffs, n_resamples=10000, seed=2)
    assert fast_ci != slow_ci                                   # really two different code paths
    assert fast_ci == pytest.approx(slow_ci, abs=0.3)
    assert fast_p == pytest.approx(slow_p, abs=0.01)


def test_permutation_of_two_strata_has_the_exact_p_value():
    # One +100 item in each of two 4-item strata: the flipped group mean is +-25 or 0, each half the time.
    p = paired_permutation([[100.0, 0, 0, 0], [0, 100.0, 0, 0]], n_resamples=20000, seed=0)
    assert p == pytest.approx(0.5, abs=0.015)


def test_mean_at_k_scores_use_the_permutation_test():
    # Per-item means over k = 4 samples (0/100 each) are not 0/100: McNemar does not apply.
    r = paired_test([[25.0, 50.0, 0.0, 100.0]], [[75.0, 50.0, 25.0, 100.0]])
    assert r.test == "permutation" and r.delta == pytest.approx(18.75) and r.n == 4


def test_p_at_the_permutation_floor_reads_as_a_bound():
    """No resample as extreme as the observed difference gives p = 1/(R+1): that is a bound, and
    it is printed as `< 1/(R+1)`, not as a value (0.0005 for the comparison's R = 2000)."""
    from harness.report.stats import format_p

    res = paired_test([np.zeros(30), np.zeros(30)], [np.full(30, 100.0), np.full(30, 60.0)], n_resamples=999)
    assert res.test == "permutation" and res.p_value == res.p_floor == 1 / 2001
    assert format_p(res.p_value, res.p_floor) == "< 0.0005"
    assert format_p(1 / 1000, 1 / 1000) == "< 0.001"                  # R = 999
    assert format_p(0.0123, 1 / 1000) == "0.0123" and format_p(0.51) == "0.51"
    assert paired_test([0, 100, 0], [100, 100, 0]).p_floor is None     # exact McNemar has no floor


def test_compare_prints_the_floor_as_a_bound(tmp_path):
    from harness.report.compare import compare, render
    from tests.test_compare import write_run

    base = write_run(tmp_path, "base", {"tiny_kv": [0.0] * 20, "tiny_mc": [0.0] * 20})
    other = write_run(tmp_path, "longact", {"tiny_kv": [100.0] * 20, "tiny_mc": [100.0] * 20})
    row = next(line for line in render(compare([str(base), str(other)])).splitlines() if "| tiny avg" in line)
    assert "< 0.0005" in row and "permutation" in row
