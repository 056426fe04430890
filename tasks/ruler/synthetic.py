"""The five RULER generators (niah, variable tracking, CWE, FWE, QA) as pure functions of a size.

Each generator turns (sample seed, haystack size) into one sample: the prompt as the model sees it
(model template applied), the answer prefix sent as a prefill, the gold outputs and placement
info. The same (seed, size) always gives the same sample, so `tasks/ruler/build.py` can search the
size that fills a token budget without the random draws drifting between tries (the official
scripts re-draw on every try from one global RNG, so their samples depend on how many tries the
search took and on which other tasks ran before).

Departures from NVIDIA/RULER, all deliberate:
* The official scripts format the model template and the task template as one string; with
  real chat templates we render the task text first and then apply the chat template, so braces
  or the word "are" inside a chat template are never rewritten by the niah singular/plural fix.
* Essay sentences are split by a regex by default (nltk punkt needs a download; selectable).
* Per-sample seeds derive from (seed, task, length, index) instead of one RNG stream.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tasks.ruler import sizing, sources
from tasks.ruler.constants import TaskConfig

# 40 insertion depths in percent, as the official niah/vt generators use.
DEPTHS = [int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True)).astype(int)]
VT_ICL_BUDGET = 500  # tokens of the one-shot variable-tracking example (official)


@dataclass
class Sample:
    body: str
    """Prompt up to the answer prefix, model template applied."""
    answer_prefix: str
    outputs: list[str]
    info: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return self.body + self.answer_prefix


Wrap = Callable[[str], str]


@dataclass
class Context:
    """What generators need besides the size: the model template and the data sources."""

    wrap: Wrap
    count: Callable[[str], int]
    length: int
    seed: int
    essay_path: str | None = None
    squad_path: str | None = None
    hotpotqa_path: str | None = None
    sentence_splitter: str = "regex"


class Generator:
    """Base: `make(rng, size)` builds one sample; `min_size` is the smallest meaningful size.

    Official sizing (tasks/ruler/sizing.py) asks each generator for its official step
    (`official_step`, the scripts' `incremental`) and search (`official_search`)."""

    min_size = 1
    unit_tokens_guess = 10.0

    def __init__(self, cfg: TaskConfig, ctx: Context):
        self.cfg, self.ctx, self.args = cfg, ctx, cfg.args
        self.template = cfg.template

    def sources(self) -> list[sources.Source]:
        return []

    def make(self, sample_seed: int, size: int, index: int) -> Sample:
        raise NotImplementedError

    @property
    def budget(self) -> int:
        return self.ctx.length - self.template.tokens_to_generate

    def official_step(self) -> int:
        """The haystack units the official per-sample loop removes at a time (qa: 10 documents)."""
        return 10

    def search_sample(self, sample_seed: int, size: int, index: int) -> Sample:
        """The sample whose prompt the official search counts (VT: without its one-shot example)."""
        return self.make(sample_seed, size, index)

    def search_extra_tokens(self) -> int:
        """Tokens the official search adds to the prompt's (VT: the one-shot example's)."""
        return 0

    def official_search(self, tokens: Callable[[int], int]) -> int:
        """The official size for this task and length; `tokens(size)` counts `search_sample`'s
        prompt. niah, vt, qa: probe one step, then binary search (upper bound 3 x length per
        unit)."""
        step = self.official_step()
        return sizing.binary_search(tokens, self.budget - self.search_extra_tokens(), self.ctx.length, step, probe=step)


# NIAH ------------------------------------------------------------------------------------

def random_needle_value(rng: random.Random, kind: str) -> str:
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        return sources.random_niah_word(rng)
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise ValueError(f"needle type must be numbers, words or uuids, got {kind!r}")


def insert_at_depths(sentences: list[str], items: list[str], depths: list[int]) -> str:
    """Insert `items` between sentences at the given depths (percent of the sentences).

    The official arithmetic, `int(n * (depth / 100))`: in floating point it is one sentence lower
    than `int(n * depth / 100)` for some (n, depth), e.g. (150, 82) gives 122, not 123."""
    positions = [0] + sorted(int(len(sentences) * (d / 100)) for d in depths) + [len(sentences)]
    parts = []
    for i in range(1, len(positions)):
        parts.append(" ".join(sentences[positions[i - 1]:positions[i]]))
        if i - 1 < len(items):
            parts.append(items[i - 1])
    return " ".join(parts)


def repeat_to(words: list[str], n: int) -> list[str]:
    if n <= len(words):
        return words[:n]
    return (words * (-(-n // len(words))))[:n]


class NIAH(Generator):
    unit_tokens_guess = 20.0

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        a = self.args
        self.haystack = a["type_haystack"]
        self.num_k = max(a["num_needle_k"], a["num_needle_q"])
        if self.haystack == "essay":
            self.essay, self.essay_source = sources.essay_words(ctx.essay_path)
            self.unit_tokens_guess = 1.3

    def sources(self):
        out = [sources.niah_word_parts()[2]]
        if self.haystack == "essay":
            out.append(self.essay_source)
        return out

    def official_step(self):
        """niah.py: 500 essay words, 25 noise or needle lines (5 below a 4096-token length)."""
        if self.haystack == "essay":
            return 500
        return 5 if self.ctx.length < 4096 else 25

    def make(self, sample_seed, size, index):
        a, rng = self.args, random.Random(sample_seed)
        type_v = a["type_needle_v"]
        keys, values, needles = [], [], []
        for _ in range(self.num_k):
            keys.append(random_needle_value(rng, a["type_needle_k"]))
            values.append([random_needle_value(rng, type_v) for _ in range(a["num_needle_v"])])
            needles += [sources.NEEDLE.format(type_needle_v=type_v, key=keys[-1], value=v) for v in values[-1]]
        random.Random(self.ctx.seed).shuffle(needles)  # official: a fixed-seed shuffle of the needles
        queried = rng.sample(range(self.num_k), a["num_needle_q"])

        if self.haystack == "essay":
            text = " ".join(repeat_to(self.essay, size))
            depths = rng.sample(DEPTHS, len(needles))
            context = insert_at_depths(sources.split_sentences(text.strip(), self.ctx.sentence_splitter), needles, depths)
        else:
            if self.haystack == "noise":
                fillers = [sources.NOISE_HAYSTACK] * size
            elif self.haystack == "needle":
                filler_rng = random.Random(sample_seed ^ 0x5EED)
                fillers = [sources.NEEDLE.format(type_needle_v=type_v, key=random_needle_value(filler_rng, a["type_needle_k"]),
                                                 value=random_needle_value(filler_rng, type_v)) for _ in range(size)]
            else:
                raise ValueError(f"type_haystack must be noise, essay or needle, got {self.haystack!r}")
            # Official: needles go before randomly chosen fillers (inserted from the back).
            slots = sorted(rng.sample(range(size), len(needles)), reverse=True)
            for slot, needle in zip(slots, needles):
                fillers.insert(slot, needle)
            depths = [round(100 * slot / size) for slot in slots]
            context = "\n".join(fillers)

        queries = [keys[i] for i in queried]
        answers = [v for i in queried for v in values[i]]
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
        template, prefix, tv = self.template.text, self.template.answer_prefix, type_v
        if a["num_needle_q"] * a["num_needle_v"] == 1:
            template, prefix = (_singular(t) for t in (template, prefix))
            tv = type_v[:-1]
        body = self.ctx.wrap(template.format(type_needle_v=tv, context=context, query=query))
        return Sample(body, prefix.format(type_needle_v=tv, query=query), answers,
                      {"depths": sorted(depths), "needles": len(needles)})


def _singular(text: str) -> str:
    """The official one-needle rewording ("Some ... are" -> "A ... is")."""
    for old, new in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
        text = text.replace(old, new)
    return text


# Variable tracking -----------------------------------------------------------------------

def _chains(rng: random.Random, num_chains: int, num_hops: int, icl: bool) -> tuple[list[list[str]], list[list[str]]]:
    k = 3 if icl else 5
    hops = min(10, num_hops) if icl else num_hops
    names = ["".join(rng.choices(string.ascii_uppercase, k=k)) for _ in range((hops + 1) * num_chains)]
    while len(set(names)) < num_chains * (hops + 1):
        names.append("".join(rng.choices(string.ascii_uppercase, k=k)))
    all_vars, chains = [], []
    for i in range(0, len(names), hops + 1):
        vs = names[i:i + hops + 1]
        all_vars.append(vs)
        first = 12345 if icl else rng.randint(10000, 99998)
        chains.append([f"VAR {vs[0]} = {first}"] + [f"VAR {vs[j + 1]} = VAR {vs[j]} " for j in range(hops)])
    return all_vars, chains


class VariableTracking(Generator):
    min_size = 5
    unit_tokens_guess = 20.0

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        if self.args.get("type_haystack", "noise") != "noise":
            raise ValueError("variable tracking is implemented for the official noise haystack only")
        self.hops, self.num_chains = self.args["num_hops"], self.args["num_chains"]
        self.icl = self._icl_example()

    def _text(self, rng, size, icl):
        all_vars, chains = _chains(rng, self.num_chains, self.hops, icl)
        fillers = [sources.NOISE_HAYSTACK] * size
        for chain in chains:
            positions = sorted(rng.sample(range(len(fillers)), len(chain)))
            for j, pos in enumerate(positions):
                fillers.insert(pos + j, chain[j])
        context = "\n".join(fillers).replace(". \n", ".\n")
        value = chains[0][0].split("=")[-1].strip()
        fmt = {"context": context, "query": value, "num_v": self.hops + 1}
        return self.template.text.format(**fmt), self.template.answer_prefix.format(**fmt), all_vars[0]

    def _icl_example(self) -> str:
        """The official one-shot example, followed by its answer: a VT sample with 3-letter names
        and value 12345 (task template + answer prefix, no model template) whose noise size is
        binary-searched as officially (`sys_vartrack_w_noise_random(num_samples=1,
        max_seq_length=500, incremental=5)`: probe 5 lines, largest size within 500 tokens in
        [5, max(3 x 500 / tokens per line, 10)]), 5 lines when none fits."""
        def example(size):
            text, prefix, outputs = self._text(random.Random(self.ctx.seed), size, icl=True)
            return text + prefix, " ".join(outputs)

        size = sizing.binary_search(lambda n: self.ctx.count(example(n)[0]), VT_ICL_BUDGET, VT_ICL_BUDGET,
                                    step=5, probe=5)
        text, answer = example(size)
        return text + " " + answer + "\n"

    def _randomized_icl(self, rng: random.Random) -> str:
        icl = self.icl
        for name in icl.strip().split()[-(self.hops + 1):]:
            icl = icl.replace(name, "".join(rng.choices(string.ascii_uppercase, k=len(name))))
        return icl.replace("12345", str(rng.randint(10000, 99998)))

    def make(self, sample_seed, size, index, with_example: bool = True):
        rng = random.Random(sample_seed)
        text, prefix, outputs = self._text(rng, size, icl=False)
        body = self.ctx.wrap(self._randomized_icl(rng) + "\n" + text if with_example else text)
        return Sample(body, prefix, outputs, {})

    def official_step(self):
        """variable_tracking.py: 10 noise lines (5 below a 4096-token length)."""
        return 5 if self.ctx.length < 4096 else 10

    def search_sample(self, sample_seed, size, index):
        return self.make(sample_seed, size, index, with_example=False)

    def search_extra_tokens(self):
        return self.ctx.count(self.icl)


# Common words (CWE) ----------------------------------------------------------------------

class CommonWords(Generator):
    min_size = 11  # the 10 common words and one uncommon word
    unit_tokens_guess = 15.0

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.words, self.large, self.words_source = sources.cwe_words(ctx.seed)
        self.small_set = set(self.words)
        a = self.args
        # Below 4k the official generator shrinks the repeats so that the list still fits.
        if ctx.length < 4096:
            self.shot_shape, self.main_repeats = (20, 3, 1), (6, 1)
        else:
            self.shot_shape, self.main_repeats = (40, 10, 3), (a["freq_cw"], a["freq_ucw"])

    def sources(self):
        return [self.words_source]

    def _example(self, rng, num_words, common_repeats, uncommon_repeats):
        if num_words <= len(self.words):
            chosen = rng.sample(self.words, num_words)
        else:
            # Official: switch to the large list altogether. Its words are longer, so the token
            # count jumps at the switch and the budget could not be filled; we keep every small
            # word and add the rest from the large list instead (same words, no jump).
            extra = [w for w in rng.sample(self.large, num_words) if w not in self.small_set][: num_words - len(self.words)]
            if len(extra) < num_words - len(self.words):
                raise ValueError(f"CWE needs {num_words} distinct words; the word lists have fewer")
            chosen = rng.sample(self.words, len(self.words)) + extra
        num_cw = self.args["num_cw"]
        common, uncommon = chosen[:num_cw], chosen[num_cw:]
        listing = common * common_repeats + uncommon * uncommon_repeats
        random.Random(self.ctx.seed).shuffle(listing)
        return " ".join(f"{i + 1}. {w}" for i, w in enumerate(listing)), common

    def _task(self, context):
        return self.ctx.wrap(self.template.text.format(context=context, query="", num_cw=self.args["num_cw"]))

    def official_search(self, tokens):
        """common_words_extraction.py: probe 4096 words; upper bound int(length // per word) x 2."""
        return sizing.binary_search(tokens, self.budget, self.ctx.length, step=10, probe=4096, spread=2,
                                    floor_estimate=True)

    def make(self, sample_seed, size, index):
        rng, prefix = random.Random(sample_seed), self.template.answer_prefix
        shots = []
        for _ in range(self.args["num_fewshot"]):
            ctx, answer = self._example(rng, *self.shot_shape)
            shots.append(self._task(ctx) + prefix + " " + " ".join(f"{i + 1}. {w}" for i, w in enumerate(answer)))
        context, answer = self._example(rng, size, *self.main_repeats)
        return Sample("\n".join(shots) + "\n" + self._task(context), prefix, answer, {})


# Frequent words (FWE) --------------------------------------------------------------------

class FrequentWords(Generator):
    min_size = 10
    unit_tokens_guess = 2.0

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.alpha = float(self.args["alpha"])
        self.wordlen = int(self.args["coded_wordlen"])
        self.vocab_size = max(4, (ctx.length - self.template.tokens_to_generate) // 50)
        from scipy.special import zeta

        ranks = np.arange(1, self.vocab_size + 1)
        self.shares = ranks ** -self.alpha / zeta(self.alpha)

    def official_step(self):
        """freq_words_extraction.py: (length - tokens to generate) // 32 words."""
        return self.budget // 32

    def official_search(self, tokens):
        """freq_words_extraction.py: from budget // word length words up by one step until the
        prompt reaches the budget, then one step back."""
        return sizing.linear_search(tokens, self.budget, self.budget // self.wordlen, self.official_step())

    def make(self, sample_seed, size, index):
        rng = random.Random(sample_seed)
        vocab = ["".join(rng.choices(string.ascii_lowercase, k=self.wordlen)) for _ in range(self.vocab_size)]
        while len(set(vocab)) < self.vocab_size:
            vocab.append("".join(rng.choices(string.ascii_lowercase, k=self.wordlen)))
        vocab = sorted(set(vocab))
        random.Random(self.ctx.seed).shuffle(vocab)
        vocab[0] = "..."  # the top-ranked word is noise, as officially
        counts = (size * self.shares).astype(int)
        coded = [w for w, c in zip(vocab, counts) for _ in range(c)]
        random.Random(self.ctx.seed).shuffle(coded)
        body = self.ctx.wrap(self.template.text.format(context=" ".join(coded), query=""))
        return Sample(body, self.template.answer_prefix, vocab[1:4], {})


# QA --------------------------------------------------------------------------------------

class QA(Generator):
    unit_tokens_guess = 150.0
    DOCUMENT = "Document {i}:\n{document}"

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        dataset = self.args["dataset"]
        path = ctx.squad_path if dataset == "squad" else ctx.hotpotqa_path
        self.data = sources.qa_data(dataset, path)

    def sources(self):
        return [self.data.source]

    def make(self, sample_seed, size, index):
        rng, data = random.Random(sample_seed), self.data
        if index >= len(data.questions):
            raise ValueError(f"{data.source.origin} has {len(data.questions)} answerable questions; "
                             f"sample {index} asks for more (lower num_samples)")
        q = data.questions[index]  # official: the i-th question of the file
        gold, more = q["context"], q["more_context"]
        n_docs = max(size, len(gold))
        if n_docs < len(data.docs):
            if n_docs - len(gold) > len(more):
                taken = set(gold + more)
                others = [i for i in range(len(data.docs)) if i not in taken]
                chosen = gold + more + rng.sample(others, max(0, n_docs - len(gold) - len(more)))
            else:
                chosen = gold + rng.sample(more, n_docs - len(gold))
            docs = [data.docs[i] for i in chosen]
        else:
            docs = (data.docs * (-(-n_docs // len(data.docs))))[:n_docs]
        random.Random(self.ctx.seed).shuffle(docs)
        context = "\n\n".join(self.DOCUMENT.format(i=i + 1, document=d) for i, d in enumerate(docs))
        body = self.ctx.wrap(self.template.text.format(context=context, query=q["query"]))
        return Sample(body, self.template.answer_prefix, list(q["outputs"]), {"documents": len(docs)})


GENERATORS: dict[str, type[Generator]] = {
    "niah": NIAH,
    "variable_tracking": VariableTracking,
    "common_words_extraction": CommonWords,
    "freq_words_extraction": FrequentWords,
    "qa": QA,
}

