"""Build RULER samples within a token budget, and cache them on disk.

Budget (official): tokens of the prompt as the server sees it (model template and answer prefix
included) + the task's tokens to generate <= the target length. Counted with the evaluated
model's tokenizer. Nothing is truncated afterwards. Two sizings (`BuildSpec.sizing`):

* `official` (the default in official mode): the official procedure (tasks/ruler/sizing.py), one
  binary search per task and length, then per sample a fixed step down until it fits; samples are
  often well below the budget, as in the published numbers.
* `exact`: the haystack size is searched per sample: each try is one fast tokenizer pass, and a
  secant step on (size, tokens) lands within one haystack unit in two or three tries, so every
  sample fills its budget.

Built samples are cached under `$LONGACT_CACHE/ruler/datasets/` keyed by (task, length, number
of samples, seed, sizing, tokenizer and chat template, data sources, generator version), so
reruns and the other tasks' runs reuse them; the key is stored in every document.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tasks.data_io import atomic_write_text
from tasks.ruler import sizing, sources
from tasks.ruler.constants import DEFAULT_SEED, TASKS, VERSION
from tasks.ruler.synthetic import GENERATORS, Context, Sample
from tasks.tokens import encode_fast, tokenizer_identity

log = logging.getLogger("longact.ruler")
FILL_TARGET = 0.97  # prompts must use at least this share of their budget (where the unit allows)
SENTINEL = "\x00RULER-TASK-TEXT\x00"


# Tokenizer-side helpers --------------------------------------------------------------------

def token_counter(tokenizer) -> Callable[[str], int]:
    """Tokens of a completion prompt as vLLM counts them (special tokens added, as `encode`)."""
    return lambda text: len(encode_fast(tokenizer, [text])[0])


def template_wrapper(tokenizer, use_chat_template: bool | None, chat_template_kwargs: dict | None) -> tuple[Callable[[str], str], str]:
    """(wrap, description): wrap(user text) -> text up to where the model's answer starts.

    The official scripts paste the task text into a per-model template; we take the template from
    the tokenizer (`use_chat_template` None = when it has one). Rendering is done once around a
    sentinel and reused as prefix + text + suffix, checked against a direct render.
    """
    if use_chat_template is None:
        use_chat_template = bool(getattr(tokenizer, "chat_template", None))
    if not use_chat_template:
        return (lambda text: text), "none (base model: the task text as is)"
    kwargs = {"enable_thinking": False, **(chat_template_kwargs or {})}

    def render(text: str) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True, **kwargs)

    rendered = render(SENTINEL)
    if rendered.count(SENTINEL) != 1:
        return render, f"chat template {kwargs}"
    head, tail = rendered.split(SENTINEL)
    probe = "Probe text.\nWith two lines."
    if render(probe) != head + probe + tail:  # templates that transform the content: render each time
        return render, f"chat template {kwargs}"
    return (lambda text: head + text + tail), f"chat template {kwargs}"


# Size search -----------------------------------------------------------------------------

@dataclass
class Fit:
    size: int
    tokens: int
    tries: int


def fit_size(cost: Callable[[int], int], budget: int, guess: int, min_size: int, rate_guess: float,
             max_tries: int = 40) -> Fit:
    """Largest size (up to one haystack unit) whose cost fits `budget`.

    `cost` is near-linear and near-monotone in size. Each step uses the local rate (tokens per
    unit between the best fitting and the smallest failing size, else between the last two
    tries), which handles kinks such as CWE's switch to a longer word list.
    """
    seen: dict[int, int] = {}
    order: list[int] = []

    def f(n: int) -> int:
        if n not in seen:
            seen[n] = cost(n)
            order.append(n)
        return seen[n]

    n = max(min_size, guess)
    best, over, rate = None, None, rate_guess
    slack = budget * 0.001  # a few tokens: not worth another full tokenizer pass
    for _ in range(max_tries):
        c = f(n)
        if c <= budget:
            best = n if best is None or n > best else best
        else:
            over = n if over is None or n < over else over
        if best is None and n == min_size:
            raise ValueError(f"the prompt at the smallest haystack size already takes {c} tokens, over the budget of {budget} "
                             "(choose a longer length)")
        if best is not None and over is not None:
            if over - best <= 1:
                break
            rate = max(1e-6, (seen[over] - seen[best]) / (over - best))
        elif len(order) >= 2 and order[-1] != order[-2]:
            a, b = order[-2], order[-1]
            rate = max(1e-6, (seen[b] - seen[a]) / (b - a))
        if best is not None:
            room = budget - seen[best]
            if room < max(rate, slack):  # within one unit (or 0.1% of the budget) of the largest size
                break
            n = best + max(1, math.floor(room / rate))
            if over is not None and n >= over:
                n = (best + over) // 2
        else:
            n = max(min_size, min(n - 1, n - math.ceil((c - budget) / rate)))
    if best is None:
        raise ValueError(f"no haystack size fits the budget of {budget} tokens")
    return Fit(best, seen[best], len(seen))


def initial_guess(cost: Callable[[int], int], budget: int, min_size: int, rate_guess: float) -> tuple[int, float]:
    """(size guess, tokens per unit) from the smallest prompt and one probe at ~1/16 of the budget;
    both are cheap next to a full-length tokenizer pass."""
    base = cost(min_size)
    probe = min_size + max(10, int((budget - base) / rate_guess / 16))
    rate = max(1e-6, (cost(probe) - base) / (probe - min_size))
    # Aim slightly under the budget: a first try that fits leaves one cheap step up, one that
    # overshoots costs a step down and often another up.
    return max(min_size, min_size + int((0.995 * budget - base) / rate)), rate


# Dataset ---------------------------------------------------------------------------------

@dataclass
class BuildSpec:
    task: str
    length: int
    num_samples: int
    seed: int = DEFAULT_SEED
    essay_path: str | None = None
    squad_path: str | None = None
    hotpotqa_path: str | None = None
    sentence_splitter: str = "regex"
    use_chat_template: bool | None = None
    chat_template_kwargs: dict | None = None
    mode: str = "official"
    """`reasoning`: the prompt is the user turn only (no template, no answer prefix; the server
    applies the chat template with thinking enabled); its size still counts the template."""
    sizing: str = "exact"
    """`official`: the official search-then-shrink procedure (tasks/ruler/sizing.py); `exact`:
    each sample filled to within one haystack unit of its budget. The task loader defaults to
    `official` in official mode."""


def sample_seed(seed: int, task: str, length: int, index: int) -> int:
    digest = hashlib.sha256(f"{seed}|{task}|{length}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def build_samples(spec: BuildSpec, tokenizer, progress: bool = False) -> list[dict]:
    """The documents of one task at one length (no cache)."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown RULER task {spec.task!r}; known: {', '.join(TASKS)}")
    if spec.sizing not in sizing.SIZINGS:
        raise ValueError(f"sizing must be one of {', '.join(sizing.SIZINGS)}, got {spec.sizing!r}")
    cfg = TASKS[spec.task]
    count = token_counter(tokenizer)
    reasoning = spec.mode == "reasoning"
    if reasoning:
        chat, template_desc = template_wrapper(tokenizer, True, {"enable_thinking": True, **(spec.chat_template_kwargs or {})})
        wrap, prompt_count = (lambda text: text), (lambda text: count(chat(text)))
        template_desc += " applied by the server (reasoning mode, no answer prefix)"
    else:
        wrap, template_desc = template_wrapper(tokenizer, spec.use_chat_template, spec.chat_template_kwargs)
        prompt_count = count
    ctx = Context(wrap=wrap, count=count, length=spec.length, seed=spec.seed, essay_path=spec.essay_path,
                  squad_path=spec.squad_path, hotpotqa_path=spec.hotpotqa_path,
                  sentence_splitter=spec.sentence_splitter)
    gen = GENERATORS[cfg.kind](cfg, ctx)
    budget = spec.length - cfg.template.tokens_to_generate
    srcs = {"sources": [s.to_dict() for s in gen.sources()], "template": template_desc, "sizing": spec.sizing,
            "sentence_splitter": spec.sentence_splitter if cfg.args.get("type_haystack") == "essay" else None}
    docs, guess, rate = [], None, gen.unit_tokens_guess

    def text_of(sample: Sample) -> str:
        return sample.body if reasoning else sample.prompt

    official_size = None
    if spec.sizing == "official":  # one search, on the first sample, as officially
        first = sample_seed(spec.seed, spec.task, spec.length, 0)
        official_size = gen.official_search(lambda n: prompt_count(text_of(gen.search_sample(first, n, 0))))
    it = range(spec.num_samples)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"ruler_{spec.task}@{spec.length}", unit="sample", leave=False)
    for index in it:
        seed = sample_seed(spec.seed, spec.task, spec.length, index)
        made: dict[int, Sample] = {}
        counted: dict[int, int] = {}

        def cost(n: int) -> int:
            if n not in counted:
                made[n] = gen.make(seed, n, index)
                counted[n] = prompt_count(text_of(made[n]))
            return counted[n]

        try:
            if official_size is not None:
                size = sizing.shrink(lambda n: cost(n) <= budget, official_size, gen.official_step())
                fit = Fit(size, cost(size), len(counted))
            else:
                if guess is None:  # first sample: measure tokens per haystack unit on a small probe
                    guess, rate = initial_guess(lambda n: prompt_count(text_of(gen.make(seed, n, index))), budget,
                                                gen.min_size, gen.unit_tokens_guess)
                fit = fit_size(cost, budget, guess, gen.min_size, rate)
                guess = fit.size
        except ValueError as e:
            hint = " (or pass --metadata '{\"sizing\": \"exact\"}')" if official_size is not None else ""
            raise ValueError(f"ruler_{spec.task} at length {spec.length}: {e}{hint}") from e
        s = made[fit.size]
        docs.append({
            "id": f"{spec.task}-{spec.length}-{index}", "index": index, "length": spec.length,
            "_prompt": text_of(s), "answer_prefix": "" if reasoning else s.answer_prefix, "outputs": s.outputs,
            "prompt_tokens": fit.tokens, "budget": budget, "haystack_size": fit.size,
            "fill": round(fit.tokens / budget, 4), "depths": s.info.get("depths", []),
            "_sources": json.dumps(srcs, sort_keys=True),
        })
    return docs


def cache_key(spec: BuildSpec, tokenizer) -> str:
    cfg = TASKS[spec.task]
    payload = {"version": VERSION, "task": spec.task, "args": cfg.args, "template": cfg.template.text + cfg.template.answer_prefix,
               "length": spec.length, "num_samples": spec.num_samples, "seed": spec.seed,
               "tokenizer": tokenizer_identity(tokenizer), "use_chat_template": spec.use_chat_template,
               "chat_template_kwargs": spec.chat_template_kwargs, "splitter": spec.sentence_splitter,
               "mode": spec.mode, "sizing": spec.sizing,
               "data": _source_digests(spec, cfg)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _source_digests(spec: BuildSpec, cfg) -> list[str]:
    if cfg.kind == "qa":
        path = spec.squad_path if cfg.args["dataset"] == "squad" else spec.hotpotqa_path
        return [sources.qa_data(cfg.args["dataset"], path).source.sha256]
    if cfg.args.get("type_haystack") == "essay":
        return [sources.essay_words(spec.essay_path)[1].sha256]
    return []


def load_or_build(spec: BuildSpec, tokenizer, cache_dir: Path | None = None, progress: bool = False) -> list[dict]:
    """Cached documents for `spec`, building (and atomically writing) them when missing."""
    key = cache_key(spec, tokenizer)
    root = Path(cache_dir) if cache_dir else sources.cache_root() / "datasets"
    path = root / f"{spec.task}-{spec.length}-{key}.jsonl"
    if path.exists():
        docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(docs) == spec.num_samples and all(d.get("cache_key") == key for d in docs):
            return docs
        log.warning("ignoring an incomplete RULER cache file %s; rebuilding", path)
    docs = build_samples(spec, tokenizer, progress=progress)
    for d in docs:
        d["cache_key"] = key
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return docs
