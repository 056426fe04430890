"""Fit prompts to the served window ourselves, in tokens of the evaluated model's tokenizer.

Backends truncate differently (lm-eval's vLLM backend keeps the tail, `local-completions` with
`tokenized_requests=False` does not check at all and a single over-long prompt kills the run with
a 400), which silently changes a benchmark. So the harness fits every prompt before it is sent:

* `middle_truncate_ids` keeps the head and the tail of a token sequence, as LongBench and
  InfiniteBench do (the question usually sits at the end, the instruction at the start).
* `PromptFitter.fit` makes (templated prompt + generation budget) <= max_model_len, truncating the
  raw content in the middle *before* the chat template is applied, so the template's special
  tokens are never cut. Benchmarks with their own official truncation apply it in their task
  code first; this is the last line of defence and it counts what it did.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from harness.errors import UserError


def middle_truncate_ids(ids: list[int], max_len: int, tail_rounds_up: bool = True) -> list[int]:
    """Keep the first and last tokens of `ids` so that at most `max_len` remain.

    Head = max_len // 2. With `tail_rounds_up` the tail is max_len - head, exactly max_len kept:
    what LongBench `pred.py` and InfiniteBench `truncate_input` both do (`ids[-m//2:]` parses as
    `ids[(-m)//2:]`, i.e. ceil(m/2) ids); without it the tail is also max_len // 2.
    """
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if len(ids) <= max_len:
        return list(ids)
    head = max_len // 2
    tail = max_len - head if tail_rounds_up else max_len // 2
    return list(ids[:head]) + (list(ids[len(ids) - tail:]) if tail else [])


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class FitResult:
    """What was sent for one request and how it was obtained."""

    text: str
    """Prompt text (completion endpoint) or user-message content (chat endpoint) to send."""
    prompt_tokens: int
    """Tokens of the final prompt as the server sees it (chat template included)."""
    original_tokens: int
    """Tokens of the prompt before fitting (chat template included)."""
    truncated: bool
    removed_tokens: int


class PromptFitter:
    """Middle-truncates prompt content so that prompt + `max_gen_toks` fits `max_model_len`."""

    def __init__(self, tokenizer, max_model_len: int, chat_template_kwargs: dict | None = None):
        self.tok = tokenizer
        self.max_model_len = int(max_model_len)
        self.chat_template_kwargs = chat_template_kwargs or {}

    def render(self, content: str, chat: bool, template_kwargs: dict | None = None,
               prefix: list[dict] | None = None) -> str:
        """The text the server tokenizes: the chat template applied (chat) or the prompt itself.

        `template_kwargs` (e.g. {"enable_thinking": True} in reasoning mode) are the ones sent
        with the request, so the count matches what the server renders."""
        if not chat:
            return content
        return self.tok.apply_chat_template(
            list(prefix or []) + [{"role": "user", "content": content}], tokenize=False,
            add_generation_prompt=True, **{**self.chat_template_kwargs, **(template_kwargs or {})},
        )

    def count(self, content: str, chat: bool, template_kwargs: dict | None = None,
              prefix: list[dict] | None = None) -> int:
        # vLLM tokenizes rendered chat prompts without adding special tokens and completion
        # prompts with them (a no-op for tokenizers without BOS, e.g. Qwen's).
        text = self.render(content, chat, template_kwargs, prefix)
        return len(self.tok(text, add_special_tokens=not chat)["input_ids"])

    def fit(self, content: str, max_gen_toks: int, chat: bool, template_kwargs: dict | None = None,
            prefix: list[dict] | None = None) -> FitResult:
        """`prefix`: chat messages before the user turn (a system prompt, a one-shot example)."""
        budget = self.max_model_len - int(max_gen_toks)
        original = self.count(content, chat, template_kwargs, prefix)
        if original <= budget:
            return FitResult(content, original, original, False, 0)
        ids = self.tok(content, add_special_tokens=False)["input_ids"]
        overhead = original - len(ids)
        if budget - overhead <= 0:
            raise UserError(
                f"the generation budget ({max_gen_toks} tokens) plus the prompt template "
                f"({overhead} tokens) leaves no room for content in a {self.max_model_len}-token "
                "window; raise --max-model-len or lower the task's max_gen_toks"
            )
        keep = budget - overhead
        for _ in range(8):
            # Decoding and re-encoding at the cut can merge or split tokens; shrink until it fits.
            text = self.tok.decode(middle_truncate_ids(ids, keep), skip_special_tokens=False)
            n = self.count(text, chat, template_kwargs, prefix)
            if n <= budget:
                return FitResult(text, n, original, True, original - n)
            keep -= max(1, n - budget)
        raise UserError(f"could not fit a {original}-token prompt into {budget} tokens")
