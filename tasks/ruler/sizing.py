"""RULER's official sample sizing, restated from NVIDIA/RULER `scripts/data/synthetic/*.py`.

The official generators size samples in two steps (`sizing: official`, the default in official
mode):

1. **Search, once per task and length**, on one sample: estimate the tokens per haystack unit on a
   small probe, then binary-search the largest size in [step, max(spread x length / tokens per
   unit, 2 x step)] whose prompt + tokens to generate fits the length (none fits: the step).
   FWE instead starts at budget // word length words and adds budget // 32 words until the
   prompt reaches the budget, then takes one step back.
2. **Shrink, per sample**: start at the searched size and remove one fixed step (the official
   `incremental`) until the sample fits.

Samples therefore often sit well below the budget (one step of an essay haystack is 500 words),
which is what the published numbers were measured on. `sizing: exact` (tasks/ruler/build.py)
instead fills every sample to within one haystack unit of its budget.

The official scripts redraw random content at every try from one global RNG; here each try of
the search uses the first sample's seed and each sample its own (tasks/ruler/build.py), so the
sizes are the official procedure's on deterministic samples.
"""

from __future__ import annotations

from typing import Callable

SIZINGS = ("official", "exact")


def binary_search(tokens: Callable[[int], int], fits_within: int, length: int, step: int, probe: int,
                  spread: int = 3, floor_estimate: bool = False) -> int:
    """The official search: largest size whose `tokens(size)` is at most `fits_within`.

    `tokens(n)` counts the prompt at size n; `fits_within` is the length minus everything the
    official check adds to it (tokens to generate; VT: the one-shot example). The upper bound is
    int(length / per_unit * spread) (niah, vt, qa: spread 3) or, with `floor_estimate`,
    int(length // per_unit) * spread (cwe: spread 2), per_unit = tokens(probe) / probe.
    """
    per_unit = tokens(probe) / probe
    estimate = int(length // per_unit) * spread if floor_estimate else int(length / per_unit * spread)
    low, high, best = step, max(estimate, 2 * step), None
    while low <= high:
        mid = (low + high) // 2
        if tokens(mid) <= fits_within:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return step if best is None else best


def linear_search(tokens: Callable[[int], int], budget: int, start: int, step: int) -> int:
    """FWE's official search: from `start`, add `step` until the prompt takes at least `budget`
    tokens, then one step back."""
    size = start
    while tokens(size) < budget:
        size += step
    return size - step


def shrink(fits: Callable[[int], bool], size: int, step: int) -> int:
    """The official per-sample loop: `size`, less one `step` at a time while it is over `step`,
    until the sample fits.

    Where the official loop can shrink no further it retries forever with new random draws; a
    deterministic sample would never fit, so that is an error here."""
    while not fits(size):
        if size <= step:
            raise ValueError(f"the sample does not fit its budget even at {size} haystack units (the official "
                             f"procedure shrinks by {step}); choose a longer length")
        size -= step
    return size
