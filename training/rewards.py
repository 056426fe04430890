"""Rewards are the benchmarks' own per-item scorers, so a reward of 1 means what an eval score of
100 means: `tasks.benchmarks.rewards()` collects the ones each benchmark declares.

REWARDS[name](answer, answers) -> float in [0, 1].
score(name, completion, answers) -> (reward, thinking_unclosed): the completion's thinking is
removed first (tasks.thinking.strip_thinking, the evaluation's reasoning mode does the same).
"""

from __future__ import annotations

from typing import Callable

from tasks.benchmarks import rewards
from tasks.thinking import strip_thinking

REWARDS: dict[str, Callable[[str, list[str]], float]] = rewards()


def score(name: str, completion: str, answers: list[str], opened_in_prompt: bool = False) -> tuple[float, bool]:
    """The reward of one completion: REWARDS[name] on the text after the last `</think>` (all of
    it when the model did not think). Thinking that never closed scores 0, as in the evaluation's
    reasoning mode; the second value says so, for the count the trainer logs.
    opened_in_prompt: the chat template opens the thinking block itself."""
    split = strip_thinking(completion, opened_in_prompt)
    if not split.closed:
        return 0.0, True
    return REWARDS[name](split.answer, answers), False
