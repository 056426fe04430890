"""What size of effect a comparison could have detected, and how big a study must be.

All at a two-sided level `alpha` (default 5%) and `power` (default 80%); effects in the units of
the scores (percent points for 0/100 scores).

Paired items (two checkpoints on the same items). Under "no difference" the per-item differences
are symmetric around zero, and their mean has variance E[d^2] / n: for 0/100 scores E[d^2] is
100^2 times the discordant rate (the share of items one checkpoint gets right and the other
wrong). With a true difference delta the variance shrinks to (E[d^2] - delta^2) / n. The smallest
detectable delta solves (Connor 1987, the normal form of McNemar's sample size)

    z(1 - alpha/2) * sqrt(E[d^2] / n) + z(power) * sqrt((E[d^2] - delta^2) / n) = delta.

A score that is the mean of K strata (a group's tasks) has variance (1/K^2) * sum_k E[d_k^2]/n_k,
the same formula with that variance.

Seeds (an arm trained at S seeds against the baseline at the same seeds): the per-seed
differences spread with standard deviation sigma; a t-test on them detects delta with the given
power when the noncentral t with S - 1 degrees of freedom and noncentrality delta*sqrt(S)/sigma
exceeds the critical value that often. The spread between seeds already holds the evaluation
noise of each seed's items, so it is the one number this needs.

`tests/test_power.py` checks both by simulation: data with a known effect, the project's own
tests (exact McNemar, the paired bootstrap, the seed t-test) applied, power and coverage compared
with nominal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detectable:
    """The smallest effect a comparison of this size could have detected."""
    effect: float
    """In score units; inf when no effect of the scale could be detected (too few items or seeds)."""
    basis: str
    """How it was computed, for a table's footnote: 'items: discordant 23% of 40' or 'seeds: sd 2.1 over 3'."""


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def _check_level(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: {alpha} is not a probability in (0, 1)")
    if not 0 < power < 1:
        raise ValueError(f"power: {power} is not a probability in (0, 1)")


def items_effect(null_var: float, delta_var_factor: float, alpha: float = 0.05, power: float = 0.8,
                 cap: float = math.inf) -> float:
    """The smallest delta with za*sqrt(V0) + zb*sqrt(V0 - c*delta^2) <= delta, where V0 =
    `null_var` (the variance of the mean difference under no effect) and c = `delta_var_factor`
    (how much a true delta shrinks it: 1/n for one stratum). inf when V0 is 0 (no item can
    differ) or when even the largest delta the data allow (`cap`: the mean |difference|, every
    differing item in the arm's favour) is not detectable."""
    _check_level(alpha, power)
    if null_var <= 0:
        return math.inf
    za, zb = _z(1 - alpha / 2), _z(power)
    s0 = math.sqrt(null_var)
    # The largest delta the data allow: V0 - c*delta^2 >= 0.
    top = min(cap, math.sqrt(null_var / delta_var_factor) if delta_var_factor > 0 else math.inf)

    def gap(delta: float) -> float:
        return delta - za * s0 - zb * math.sqrt(max(null_var - delta_var_factor * delta * delta, 0.0))

    if gap(top) < 0:
        return math.inf
    lo, hi = 0.0, top  # gap increases with delta (for power >= 0.5)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    return hi


def paired_effect(discordance: float, n: int, scale: float = 100.0, alpha: float = 0.05,
                  power: float = 0.8) -> float:
    """Smallest detectable difference for 0/`scale` scores on `n` paired items whose discordant
    rate is `discordance` (share of items scored differently)."""
    if n <= 0:
        return math.inf
    second = discordance * scale * scale
    return items_effect(second / n, 1.0 / n, alpha, power, cap=discordance * scale)


def paired_power(delta: float, discordance: float, n: int, scale: float = 100.0, alpha: float = 0.05) -> float:
    """Power to detect a true difference `delta` on `n` paired 0/`scale` items with this discordant
    rate (the same normal form as `paired_effect`, solved for power); 0 when delta is impossible."""
    if n <= 0 or discordance <= 0 or abs(delta) > discordance * scale:
        return 0.0
    from scipy.stats import norm

    second = discordance * scale * scale
    s0, s1 = math.sqrt(second / n), math.sqrt(max(second - delta * delta, 1e-300) / n)
    return float(norm.cdf((abs(delta) - _z(1 - alpha / 2) * s0) / s1))


def strata_effect(diffs: list, alpha: float = 0.05, power: float = 0.8) -> Detectable:
    """Detectable effect of a stratified mean of paired differences (`diffs[k]`: stratum k's
    per-item differences): the variance of the stratified mean under no effect from each
    stratum's mean squared difference."""
    strata = [np.asarray(d, dtype=float) for d in diffs if len(d)]
    if not strata:
        return Detectable(math.inf, "no shared items")
    k = len(strata)
    null_var = sum(float(np.mean(d * d)) / len(d) for d in strata) / k ** 2
    factor = sum(1.0 / len(d) for d in strata) / k ** 2
    n = sum(len(d) for d in strata)
    differing = sum(int(np.count_nonzero(d)) for d in strata)
    cap = sum(float(np.mean(np.abs(d))) for d in strata) / k
    return Detectable(items_effect(null_var, factor, alpha, power, cap), f"items: {differing} of {n} differ")


def _t_power(delta: float, sd: float, n_seeds: int, alpha: float) -> float:
    from scipy.stats import nct, t

    df = n_seeds - 1
    crit = float(t.ppf(1 - alpha / 2, df))
    nc = delta * math.sqrt(n_seeds) / sd
    return float(nct.sf(crit, df, nc) + nct.cdf(-crit, df, nc))


def seeds_effect(sd: float, n_seeds: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean per-seed difference a two-sided t-test over `n_seeds` seeds detects with
    `power`, when the per-seed differences spread with standard deviation `sd`."""
    _check_level(alpha, power)
    if n_seeds < 2 or not math.isfinite(sd):
        return math.inf
    if sd <= 0:
        return 0.0
    lo, hi = 0.0, sd
    while _t_power(hi, sd, n_seeds, alpha) < power:
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_power(mid, sd, n_seeds, alpha) < power else (lo, mid)
    return hi


def seed_interval(per_seed: list[float], level: float = 0.95) -> tuple[float, float]:
    """t interval of the mean per-seed difference (inf wide with one seed)."""
    from scipy.stats import t

    d = np.asarray(per_seed, dtype=float)
    if len(d) < 2:
        return -math.inf, math.inf
    half = float(t.ppf(1 - (1 - level) / 2, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return float(d.mean()) - half, float(d.mean()) + half


def seeds_detectable(per_seed: list[float], alpha: float = 0.05, power: float = 0.8) -> Detectable:
    d = np.asarray(per_seed, dtype=float)
    if len(d) < 2:
        return Detectable(math.inf, f"seeds: {len(d)} (a spread needs two)")
    sd = float(d.std(ddof=1))
    return Detectable(seeds_effect(sd, len(d), alpha, power), f"seeds: sd {sd:.2g} over {len(d)}")


# ---- planning: the size a study needs --------------------------------------------------------

MAX_ITEMS = 10_000_000
MAX_SEEDS = 1000


def items_needed(delta: float, discordance: float, scale: float = 100.0, alpha: float = 0.05,
                 power: float = 0.8) -> int:
    """Smallest n at which `paired_effect(discordance, n) <= delta`. ValueError when no n can:
    a difference of delta needs at least delta/scale of the items to be discordant."""
    if delta <= 0:
        raise ValueError(f"effect: {delta:g} must be positive")
    if not 0 < discordance <= 1:
        raise ValueError(f"discordance: {discordance:g} is not a rate in (0, 1]")
    if delta / scale > discordance:
        raise ValueError(f"an effect of {delta:g} needs at least {delta / scale:.0%} of items scored differently; "
                         f"with a discordant rate of {discordance:.0%} no number of items can show it")
    if paired_effect(discordance, MAX_ITEMS, scale, alpha, power) > delta:
        raise ValueError(f"an effect of {delta:g} is not detectable with up to {MAX_ITEMS:,} items")
    lo, hi = 1, 1
    while paired_effect(discordance, hi, scale, alpha, power) > delta:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if paired_effect(discordance, mid, scale, alpha, power) <= delta:
            hi = mid
        else:
            lo = mid + 1
    return hi


def seeds_needed(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_seeds: int = MAX_SEEDS) -> int:
    if delta <= 0:
        raise ValueError(f"effect: {delta:g} must be positive")
    if sd < 0:
        raise ValueError(f"seed sd: {sd:g} must be at least 0")
    for s in range(2, max_seeds + 1):
        if seeds_effect(sd, s, alpha, power) <= delta:
            return s
    raise ValueError(f"an effect of {delta:g} with a seed spread of {sd:g} needs more than {max_seeds} seeds")


def discordance(a: list[float], b: list[float]) -> float:
    """Share of paired items two runs scored differently."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.mean(a != b)) if len(a) else math.nan
