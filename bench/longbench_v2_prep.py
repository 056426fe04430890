"""LongBench v2 prompt preparation at full scale: tokenize + middle-truncate 503 ~128k-token prompts.

    python bench/longbench_v2_prep.py [--items 503] [--tokens 128000] [--max-length 120000]

Builds a 32k-vocab byte-level BPE offline (on generated text), generates 503 synthetic items whose
filled prompts are ~128k tokens, and times `PromptTruncator.batch` (what the task loader runs)
against a one-prompt-at-a-time loop on a sample. It also counts tokenizer passes per prompt.
Goal: under 60 s for all 503 on 2 cores, at most 2 tokenizer passes per prompt.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def syllable_words(rng: random.Random, n: int) -> list[str]:
    syl = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"] + ["th", "ch", "sh", "qu", "ng"]
    return ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def zipf_sampler(rng: random.Random, vocab: list[str]):
    """Words drawn with Zipfian frequencies (weight 1/rank), like natural text; uniform draws over
    60k words would defeat the tokenizer's word cache and measure a worst case no corpus has."""
    import itertools

    cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(vocab))))
    return lambda k: rng.choices(vocab, cum_weights=cum, k=k)


def build_tokenizer(rng: random.Random, vocab: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    draw = zipf_sampler(rng, vocab)
    corpus = (" ".join(draw(200)) + "." for _ in range(20000))
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


class CountingTokenizer:
    """Counts how many times each prompt goes through the tokenizer."""

    def __init__(self, tok):
        self.tok, self.passes = tok, 0
        self._tokenizer = self  # PromptTruncator uses the fast backend's batch encoder

    def encode_batch_fast(self, texts, **kw):
        self.passes += len(texts)
        return self.tok._tokenizer.encode_batch_fast(texts, **kw)

    def __call__(self, texts, **kw):
        self.passes += len(texts) if isinstance(texts, list) else 1
        return self.tok(texts, **kw)

    def encode(self, text, **kw):
        self.passes += 1
        return self.tok.encode(text, **kw)

    def decode(self, ids, **kw):
        return self.tok.decode(ids, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=503)
    ap.add_argument("--tokens", type=int, default=128_000)
    ap.add_argument("--max-length", type=int, default=120_000)
    ap.add_argument("--sequential-sample", type=int, default=20)
    args = ap.parse_args()

    from tasks.longbench_v2.prompts import ZERO_SHOT, fill
    from tasks.tokens import PromptTruncator

    rng = random.Random(0)
    vocab = syllable_words(rng, 60000)
    t0 = time.perf_counter()
    tok = build_tokenizer(rng, vocab)
    print(f"trained 32k BPE in {time.perf_counter() - t0:.1f} s")
    draw = zipf_sampler(rng, vocab)
    probe = " ".join(draw(20000))
    words_per_token = 20000 / len(tok(probe)["input_ids"])
    n_words = int(args.tokens * words_per_token)
    t0 = time.perf_counter()
    prompts = []
    for i in range(args.items):
        doc = {"context": " ".join(draw(n_words)), "question": f"Question {i}?",
               "choice_A": "a", "choice_B": "b", "choice_C": "c", "choice_D": "d"}
        prompts.append(fill(ZERO_SHOT, doc))
    print(f"generated {len(prompts)} prompts in {time.perf_counter() - t0:.1f} s "
          f"({sum(map(len, prompts)) / 1e6:.0f} MB of text)")

    counting = CountingTokenizer(tok)
    t0 = time.perf_counter()
    out = PromptTruncator(counting, args.max_length).batch(prompts)
    batched = time.perf_counter() - t0
    lengths = [n for _, _, n in out]
    print(f"prompt tokens: mean {sum(lengths) / len(lengths):.0f}, min {min(lengths)}, max {max(lengths)}; "
          f"truncated {sum(t for _, t, _ in out)}/{len(out)}")
    print(f"batched loader path: {batched:.1f} s for {len(prompts)} prompts "
          f"({counting.passes / len(prompts):.2f} tokenizer passes per prompt)")

    sample = prompts[: args.sequential_sample]
    t0 = time.perf_counter()
    seq = PromptTruncator(tok, args.max_length)
    for p in sample:
        seq(p)
    per_prompt_seq = (time.perf_counter() - t0) / len(sample)
    print(f"one-at-a-time: {per_prompt_seq:.3f} s per prompt -> {per_prompt_seq * len(prompts):.1f} s projected")
    print(f"ratio one-at-a-time / batched = {per_prompt_seq * len(prompts) / batched:.2f}x; "
          f"goal: batched < 60 s -> {'met' if batched < 60 else 'NOT met'}")
    from bench._common import record_figure

    record_figure("longbench_v2_prep.batched_s", round(batched, 1), "s", f"{len(prompts)} prompts, ~{args.tokens} tokens")
    record_figure("longbench_v2_prep.tokenizer_passes", round(counting.passes / len(prompts), 2), "per prompt")


if __name__ == "__main__":
    main()
