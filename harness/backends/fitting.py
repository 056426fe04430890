"""Fit prompts to the served window ourselves, in tokens of the evaluated model's tokenizer.

Backends truncate differently (lm-eval's vLLM backend keeps the tail, `local-completions` with
`tokenized_requests=False` does not check at all and a single over-long prompt kills the run with
a 400), which silently changes a benchmark. So the harness fits every prompt before it is sent:

* `tasks.tokens.middle_truncate_ids` keeps the head and the tail of a token sequence, as LongBench and
  InfiniteBench do (the question usually sits at the end, the instruction at the start).
* `PromptFitter.fit` makes (templated prompt + generation budget) <= max_model_len, truncating the
  raw content in the middle *before* the chat template is applied, so the template's special
  tokens are never cut. Benchmarks with their own official truncation apply it in their task
  code first; this is the last line of defence and it counts what it did.
"""

from __future__ import annotations

import hashlib

from harness.errors import UserError
from tasks.tokens import FitResult, count_prompt_tokens, middle_truncate_ids, render_prompt


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
        return render_prompt(self.tok, content, chat, {**self.chat_template_kwargs, **(template_kwargs or {})}, prefix)

    def count(self, content: str, chat: bool, template_kwargs: dict | None = None,
              prefix: list[dict] | None = None) -> int:
        return count_prompt_tokens(self.tok, content, chat, {**self.chat_template_kwargs, **(template_kwargs or {})},
                                   prefix)

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
