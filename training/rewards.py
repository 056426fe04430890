"""Rewards are the benchmarks' own per-item scorers, so a reward of 1 means what an eval score of
100 means: `tasks.benchmarks.rewards()` collects the ones each benchmark declares.

REWARDS[name](completion, answers) -> float in [0, 1].
"""

from __future__ import annotations

from typing import Callable

from tasks.benchmarks import rewards

REWARDS: dict[str, Callable[[str, list[str]], float]] = rewards()
