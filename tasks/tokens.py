"""Token primitives every layer shares: middle truncation, chat rendering and token counting.

They live at the bottom (tasks/) so benchmark loaders, the harness's prompt fitter and the
trainer's rollouts all cut and count prompts with one implementation.

Official middle truncation of filled prompts (LongBench v2, InfiniteBench): both official scripts tokenize the filled prompt, keep the first `max_length // 2` and the last
`max_length - max_length // 2` ids (Python's `ids[-m//2:]` takes ceil(m/2)), and decode. This
module does that in the evaluated model's tokenizer, one tokenizer pass per prompt, and picks
the default `max_length` so that the templated prompt plus the generation budget fits the window.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tasks.errors import UserError


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


def render_prompt(tokenizer, content: str, chat: bool, template_kwargs: dict | None = None,
                  prefix: list[dict] | None = None) -> str:
    """The text a server tokenizes: the chat template applied to one user turn (after `prefix`
    messages) with `template_kwargs`, or, for completion endpoints, the content itself."""
    if not chat:
        return content
    return tokenizer.apply_chat_template(list(prefix or []) + [{"role": "user", "content": content}],
                                         tokenize=False, add_generation_prompt=True, **(template_kwargs or {}))


def count_prompt_tokens(tokenizer, content: str, chat: bool, template_kwargs: dict | None = None,
                        prefix: list[dict] | None = None) -> int:
    """Tokens the server counts for a prompt. vLLM tokenizes rendered chat prompts without adding
    special tokens and completion prompts with them (a no-op for tokenizers without BOS)."""
    text = render_prompt(tokenizer, content, chat, template_kwargs, prefix)
    return len(tokenizer(text, add_special_tokens=not chat)["input_ids"])


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """The tokenizer at `path`, loaded once per process: the harness (prompt fitting) and every
    task loader of a run (official truncation, RULER sizing) share this one object. A checkpoint's
    own tokenizer code never runs (`trust_remote_code=False`)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds here
        raise UserError(f"cannot load a tokenizer from {path}: {e}") from e


def task_tokenizer(tokenizer):
    """The evaluated tokenizer for a task loader: a path (the harness passes one through task
    metadata) is loaded once and shared; an object is used as is."""
    return load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer


@functools.lru_cache(maxsize=8)
def tokenizer_identity(tokenizer) -> str:
    """The identity of a tokenizer, defined once for every layer: the SHA-256 of what it does,
    not of how its files are written.

    What it does is (1) the text -> ids definition (the fast tokenizer's full pipeline:
    normalizer, pre-tokenizer, model with vocabulary and merges, post-processor, added tokens;
    the sorted vocabulary for a slow tokenizer), (2) which tokens begin and end a sequence, and
    (3) the chat template that renders chat prompts. Two tokenizers with equal identities cut,
    count and render every prompt alike, in any process. File bytes are the wrong identity: a
    re-saved tokenizer's files differ byte for byte, and files that change nothing (a README, a
    stray config key) would split the request cache. The backend's truncation and padding
    settings are left out: they are call state (transformers sets them per call), not definition.

    Hashed once per tokenizer object (a vocabulary of 150k entries takes ~0.1 s): the request
    cache key, RULER's build cache, LongBench v2's second pass, `longact merge` and the sweep's
    one-engine check all use this one value."""
    import hashlib
    import json

    tok = task_tokenizer(tokenizer)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
    else:
        definition = sorted(tok.get_vocab().items())
    roles = {name: str(getattr(tok, name, None)) for name in ("bos_token", "eos_token")}
    spec = {"type": type(tok).__name__, "definition": definition, "special_roles": roles,
            "special_tokens": sorted(map(str, getattr(tok, "all_special_tokens", []) or [])),
            "chat_template": getattr(tok, "chat_template", None)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def encode_fast(tokenizer, texts: list[str]) -> list[list[int]]:
    """Same ids as tokenizer.encode(text) (special tokens added as the model adds them).

    Fast tokenizers expose `encode_batch_fast`, which skips offset tracking (~25% faster on
    128k-token prompts) and encodes a batch on all cores; others take the ordinary batch call.
    """
    backend = getattr(tokenizer, "_tokenizer", None)
    # The backend keeps the truncation and padding of the last transformers call that asked for
    # them (`tok(text, truncation=True, max_length=4)` leaves max_length 4 set); transformers resets
    # them on its own calls, a direct backend call would not, and would cut every prompt. Only a
    # backend with neither set is called directly.
    if (backend is not None and hasattr(backend, "encode_batch_fast")
            and getattr(backend, "truncation", None) is None and getattr(backend, "padding", None) is None):
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=True)]
    return tokenizer(texts, add_special_tokens=True, truncation=False, padding=False)["input_ids"]


@dataclass(frozen=True)
class FitResult:
    """A prompt fitted to its budget, and how: the harness's request fitting
    (harness/backends/fitting.py) and the benchmarks' official truncation (`PromptTruncator`)."""

    text: str
    """Prompt text (completion endpoint) or user-message content (chat endpoint) to send."""
    prompt_tokens: int | None
    """Tokens of the final prompt (with the request fitting: as the server sees it, chat template
    included); None when nothing was counted (a task loaded without a tokenizer)."""
    original_tokens: int | None
    """Tokens of the prompt before fitting; None when nothing was counted."""
    truncated: bool
    removed_tokens: int

    @classmethod
    def uncounted(cls, text: str) -> FitResult:
        """A prompt kept as it is, its tokens not counted (no tokenizer to count them)."""
        return cls(text, None, None, False, 0)


class PromptTruncator:
    """Official middle truncation with one tokenizer pass per prompt (plus a decode when cut).

    `batch` encodes prompts in chunks through the fast tokenizer's batch path, which runs on all
    cores; bench/longbench_v2_prep.py measures it on 503 prompts of ~128k tokens.
    `skip_special_tokens`: LongBench's pred.py decodes skipping them, InfiniteBench does not.
    """

    def __init__(self, tokenizer, max_length: int, chunk: int = 8, skip_special_tokens: bool = True):
        self.tok = tokenizer
        self.max_length = int(max_length)
        self.chunk = chunk
        self.skip_special_tokens = skip_special_tokens

    def __call__(self, prompt: str) -> FitResult:
        return self.batch([prompt])[0]

    def _cut(self, prompt: str, ids: list[int]) -> FitResult:
        n = len(ids)
        if n <= self.max_length:
            return FitResult(prompt, n, n, False, 0)
        kept = middle_truncate_ids(ids, self.max_length)
        return FitResult(self.tok.decode(kept, skip_special_tokens=self.skip_special_tokens), len(kept), n, True,
                         n - len(kept))

    def batch(self, prompts: list[str]) -> list[FitResult]:
        out = []
        for i in range(0, len(prompts), self.chunk):
            part = prompts[i:i + self.chunk]
            encoded = encode_fast(self.tok, part)
            out += [self._cut(p, ids) for p, ids in zip(part, encoded)]
        return out


def default_max_length(tokenizer, max_model_len: int | None, gen_budget: int, cap: int,
                       prefix: list[dict] | None = None) -> int:
    """min(cap, window - generation budget - chat-template overhead); `cap` without a window.

    The overhead is what the chat template (and any messages before the user turn) adds around
    an empty user turn, counted as the server counts it.
    """
    if not max_model_len:
        return cap
    overhead = count_prompt_tokens(tokenizer, "", chat=True, prefix=prefix)
    return max(1, min(cap, int(max_model_len) - int(gen_budget) - overhead))
