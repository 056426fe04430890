"""What a study can detect (harness/report/power.py), the planner (`longact plan`) and the CI gate
(`longact compare --fail-if-worse`).

The power formulas are checked by simulation: paired 0/100 items and per-seed differences with a
known true effect, the project's own tests applied (exact McNemar, the paired bootstrap, a t-test
over seeds), and the share of rejections / covering intervals compared with nominal. The random
generators are seeded, so every run draws the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.report import power as P


def _paired(rng, n: int, p01: float, p10: float):
    """Baseline a and arm b on n items: b alone right with p01, a alone right with p10."""
    c = rng.multinomial(n, [p01, p10, 1 - p01 - p10])
    a = np.r_[np.zeros(c[0]), np.full(c[1], 100.0), np.zeros(c[2])]
    b = np.r_[np.full(c[0], 100.0), np.zeros(c[1]), np.zeros(c[2])]
    return a, b


def test_paired_effect_by_hand():
    # n = 100, 20% discordant: V0 = 100^2 * 0.2 / 100 = 20; d solves 1.96 * sqrt(20) + 0.8416 * sqrt(20 - d^2/100) = d
    d = P.paired_effect(0.2, 100)
    assert 1.959964 * math.sqrt(20) + 0.841621 * math.sqrt(20 - d * d / 100) == pytest.approx(d, abs=1e-6)
    assert d == pytest.approx(12.38, abs=0.01)    # 8.765 + 0.8416 * sqrt(18.467) = 12.382
    assert P.paired_effect(0.2, 400) < d / 1.9            # four times the items: about half the effect
    assert math.isinf(P.paired_effect(0.0, 100))           # no item can differ
    # one discordant item in ten: no difference beyond 10 points exists, and 10 is not detectable
    assert math.isinf(P.paired_effect(0.1, 10))


def test_power_at_the_detectable_effect_is_the_nominal_power():
    for rate, n in ((0.2, 503), (0.3, 120)):
        assert P.paired_power(P.paired_effect(rate, n), rate, n) == pytest.approx(0.8, abs=1e-6)
    assert P.paired_power(40, 0.3, 1000) == 0.0             # 40 points cannot come from 30% discordant items


def test_mcnemar_power_matches_nominal_by_simulation():
    from harness.report.stats import mcnemar_exact

    rng = np.random.default_rng(7)
    for n, rate in ((200, 0.25), (503, 0.2)):
        delta = P.paired_effect(rate, n) / 100
        p01, p10 = (rate + delta) / 2, (rate - delta) / 2
        sims = 1500
        rejected = sum(mcnemar_exact(*_paired(rng, n, p01, p10)) < 0.05 for _ in range(sims))
        # 80% nominal; the Monte-Carlo standard error at 1,500 draws is 1 point, the exact test is a
        # little conservative
        assert abs(rejected / sims - 0.80) < 0.04, (n, rate, rejected / sims)


def test_paired_bootstrap_interval_covers_the_true_effect_95_percent():
    from harness.report.stats import paired_bootstrap

    rng = np.random.default_rng(11)
    n, p01, p10 = 200, 0.18, 0.07
    truth = (p01 - p10) * 100
    sims = 400
    covered = 0
    for s in range(sims):
        a, b = _paired(rng, n, p01, p10)
        low, high = paired_bootstrap([b - a], n_resamples=500, seed=s)
        covered += low <= truth <= high
    assert abs(covered / sims - 0.95) < 0.035, covered / sims   # MC standard error 1.1 points


def test_seed_power_and_interval_match_nominal_by_simulation():
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(3)
    for seeds, sd in ((3, 2.0), (5, 1.0)):
        delta = P.seeds_effect(sd, seeds)
        sims = 3000
        draws = rng.normal(delta, sd, (sims, seeds))
        power = float(np.mean(ttest_1samp(draws, 0, axis=1).pvalue < 0.05))
        covered = np.mean([lo <= delta <= hi for lo, hi in (P.seed_interval(list(x)) for x in draws)])
        assert abs(power - 0.80) < 0.03, (seeds, power)
        assert abs(covered - 0.95) < 0.015, (seeds, covered)
    assert math.isinf(P.seeds_effect(2.0, 1))                  # one seed has no spread
    assert P.seeds_effect(2.0, 3) > P.seeds_effect(2.0, 10)


def test_planner_inverts_the_detectable_effect():
    n = P.items_needed(5.0, 0.25)
    assert P.paired_effect(0.25, n) <= 5.0 < P.paired_effect(0.25, n - 1)
    s = P.seeds_needed(2.0, 1.5)
    assert P.seeds_effect(1.5, s) <= 2.0 < P.seeds_effect(1.5, s - 1)
    with pytest.raises(ValueError, match="no number of items"):
        P.items_needed(30.0, 0.2)                         # a 30-point gap needs 30% of items to differ


def test_stratified_detectable_uses_each_stratums_discordance():
    stratum = np.array([100.0] * 10 + [-100.0] * 5 + [0.0] * 25)           # 15 of 40 differ
    one = P.strata_effect([stratum]).effect
    assert one == pytest.approx(P.paired_effect(15 / 40, 40))             # one stratum: the paired formula
    two = P.strata_effect([stratum, stratum]).effect
    assert two == pytest.approx(P.paired_effect(15 / 40, 80))             # two equal strata: as 80 items
    assert math.isinf(P.strata_effect([np.array([100.0, 0, 0, 0])]).effect)  # 25 points at most, 49.9 needed
    assert math.isinf(P.strata_effect([np.zeros(10)]).effect)


# ---- the verbs ---------------------------------------------------------------------------------

def test_plan_verb_answers_items_and_seeds(capsys):
    from longact.cli import main

    assert main(["plan", "--effect", "3.93", "--discordance", "0.3"]) == 0
    out = capsys.readouterr().out
    assert f"{P.items_needed(3.93, 0.3):,} paired items detect 3.93 points" in out
    assert main(["plan", "--items", "503", "--discordance", "0.2", "--seeds", "3", "--seed-sd", "2"]) == 0
    out = capsys.readouterr().out
    assert f"detect {P.paired_effect(0.2, 503):.1f} points" in out and f"detect {P.seeds_effect(2, 3):.1f} points" in out


@pytest.mark.parametrize("argv, message", [
    (["--effect", "30", "--discordance", "0.2"], "no number of items"),
    (["--effect", "1", "--discordance", "0.3", "--max-items", "1000"], "more than --max-items"),
    (["--effect", "0.1", "--seed-sd", "5", "--max-seeds", "10"], "needs more than 10 seeds"),
    (["--effect", "-2", "--discordance", "0.2"], "positive"),
    (["--effect", "2", "--discordance", "1.5"], "(0, 1]"),
    (["--effect", "2"], "say what the noise is"),
])
def test_plan_refuses_what_it_cannot_answer(argv, message, capsys):
    from longact.cli import main

    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def _run(root, name: str, scores: dict[str, list[float]]):
    from tests.test_compare import write_run

    return write_run(root, name, scores)


def test_plan_reads_the_discordance_of_two_pilot_runs(tmp_path, capsys):
    from longact.cli import main

    a = _run(tmp_path, "pilot-a", {"tiny_passkey": [100, 0, 0, 100, 0, 0, 100, 0]})
    b = _run(tmp_path, "pilot-b", {"tiny_passkey": [100, 100, 0, 0, 0, 0, 100, 0]})
    assert main(["plan", "--effect", "20", "--from", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "25.0% of 8 shared items" in out                          # items 1 and 3 differ
    assert f"{P.items_needed(20, 0.25):,} paired items" in out


def test_compare_gate_exit_codes(tmp_path, capsys):
    """0 when nothing dropped beyond the margin and noise, 1 with one line per failing task, 2 on bad input."""
    from longact.cli import main

    n = 40
    ref = _run(tmp_path, "ref", {"tiny_passkey": [100.0] * n, "tiny_kv": [100.0] * 20 + [0.0] * 20})
    same = _run(tmp_path, "same", {"tiny_passkey": [100.0] * n, "tiny_kv": [100.0] * 19 + [0.0] * 21})
    worse = _run(tmp_path, "worse", {"tiny_passkey": [100.0] * 20 + [0.0] * 20, "tiny_kv": [100.0] * 20 + [0.0] * 20})
    assert main(["compare", str(ref), str(same), "--fail-if-worse", "5"]) == 0
    capsys.readouterr()
    assert main(["compare", str(ref), str(worse), "--fail-if-worse", "5"]) == 1
    fails = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAIL")]
    # tiny_passkey drops 50 points (interval far below 0); so does the suite's average; tiny_kv holds
    assert len(fails) == 2 and fails[0].startswith("FAIL tiny_passkey: ") and "50.0 points below" in fails[0]
    assert main(["compare", str(ref), str(worse), "--fail-if-worse", "60"]) == 0   # inside the margin
    capsys.readouterr()
    assert main(["compare", str(ref), str(worse), "--fail-if-worse", "-1"]) == 2


def test_seeds_that_all_agree_fall_back_to_the_items():
    """Three seeds with the same (zero) difference have no spread: that says nothing of what they
    could detect, so the items (pooled over the seeds) give it instead of a 0 that reads as perfect."""
    from harness.report.seeds import compare_seeds

    base = [[[100.0] * 5 + [0.0] * 5] for _ in range(3)]
    arm = [[[0.0] + [100.0] * 4 + [100.0] + [0.0] * 4] for _ in range(3)]   # one item lost, one gained
    r = compare_seeds(base, arm, n_resamples=50)
    assert r.per_seed == (0.0, 0.0, 0.0) and r.detectable_basis == "items: 6 of 30 differ"
    assert r.detectable == pytest.approx(P.paired_effect(0.2, 30)) or math.isinf(r.detectable)
