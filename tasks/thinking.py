"""Splitting a thinking model's output into its thinking and its answer.

One function serves the evaluation's reasoning mode (harness/run/modes.py) and the trainer's
rewards (training/rewards.py), so a reward scores exactly what an evaluation would score.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ThinkingSplit:
    answer: str
    found: bool
    """The output (or the prompt) opened a thinking block."""
    closed: bool
    """The thinking block was closed, so `answer` is the final answer."""


def strip_thinking(text: str, opened_in_prompt: bool = False) -> ThinkingSplit:
    """Split a reasoning-mode output into its answer.

    Several blocks: the answer follows the last `</think>`. Templates that open the block in the
    prompt (`opened_in_prompt`) produce outputs with only the closing tag; an output with an
    opening tag or an opened prompt but no closing tag never finished thinking: empty answer.
    """
    text = text or ""
    if THINK_CLOSE in text:
        return ThinkingSplit(text.rsplit(THINK_CLOSE, 1)[1].strip(), True, True)
    if THINK_OPEN in text or opened_in_prompt:
        return ThinkingSplit("", True, False)
    return ThinkingSplit(text.strip(), False, True)


def join_reasoning(content: str | None, reasoning: str | None) -> str:
    """One raw output from a server that returns thinking separately (vLLM --reasoning-parser):
    `<think>reasoning</think>content`; no content means the thinking never ended."""
    if not reasoning:
        return content or ""
    if content is None:
        return f"{THINK_OPEN}{reasoning}"
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{content}"
