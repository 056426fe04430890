"""LongBench v2 prompt preparation at full scale: tokenize + middle-truncate 503 ~128k-token prompts.

    python bench/longbench_v2_prep.py [--items 503] [--tokens 128000] [--max-length 120000]

Builds a 32k-vocab byte-level BPE offline (on generated text), generates 503 synthetic items whose
filled prompts are ~128k tokens, and times `PromptTruncator.batch` (what the task loader runs)
against a one-prompt-at-a-time loop on a sample, in wall and CPU seconds (CPU seconds move less
with the machine's load). It also counts tokenizer passes per prompt, and measures on the sample
the floor of any scheme that tokenizes only the kept head and tail: the kept ids must still come
from tokenizing the text they cover, and the kept ids must still be decoded. With prompts barely
over `--max-length` that text is most of the prompt, so the floor is close to the full path.
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


def head_tail_floor(tok, prompts: list[str], max_length: int) -> tuple[float, float]:
    """CPU seconds per prompt that any head/tail-only scheme still spends, and the kept share of text.

    Whatever skips the middle must still tokenize the characters the kept ids cover (the first
    `max_length // 2` and the last `max_length - max_length // 2` tokens) and decode those ids. The
    character spans come from one offset-tracking pass per prompt (not timed); the timed part
    encodes just those two spans and decodes the kept ids.
    """
    backend = tok._tokenizer
    head_n = max_length // 2
    cpu, share = 0.0, 0.0
    for p in prompts:
        enc = backend.encode(p)
        if len(enc.ids) <= max_length:
            continue
        head_end = enc.offsets[head_n - 1][1]
        tail_start = enc.offsets[len(enc.ids) - (max_length - head_n)][0]
        kept = enc.ids[:head_n] + enc.ids[len(enc.ids) - (max_length - head_n):]
        c0 = time.process_time()
        backend.encode_batch_fast([p[:head_end], p[tail_start:]], add_special_tokens=False)
        tok.decode(kept, skip_special_tokens=True)
        cpu += time.process_time() - c0
        share += (head_end + len(p) - tail_start) / len(p)
    return cpu / len(prompts), share / len(prompts)


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
    t0, c0 = time.perf_counter(), time.process_time()
    out = PromptTruncator(counting, args.max_length).batch(prompts)
    batched, batched_cpu = time.perf_counter() - t0, time.process_time() - c0
    lengths = [f.original_tokens for f in out]
    print(f"prompt tokens: mean {sum(lengths) / len(lengths):.0f}, min {min(lengths)}, max {max(lengths)}; "
          f"truncated {sum(f.truncated for f in out)}/{len(out)}")
    print(f"batched loader path: {batched:.1f} s for {len(prompts)} prompts, {batched_cpu:.1f} CPU-s "
          f"({counting.passes / len(prompts):.2f} tokenizer passes per prompt)")

    sample = prompts[: args.sequential_sample]
    t0, c0 = time.perf_counter(), time.process_time()
    seq = PromptTruncator(tok, args.max_length)
    for p in sample:
        seq(p)
    per_prompt_seq = (time.perf_counter() - t0) / len(sample)
    cpu_seq = (time.process_time() - c0) / len(sample)
    print(f"one-at-a-time: {per_prompt_seq:.3f} s ({cpu_seq:.3f} CPU-s) per prompt -> "
          f"{per_prompt_seq * len(prompts):.1f} s ({cpu_seq * len(prompts):.1f} CPU-s) projected")
    print(f"ratio one-at-a-time / batched = {per_prompt_seq * len(prompts) / batched:.2f}x; "
          f"goal: batched < 60 s -> {'met' if batched < 60 else 'NOT met'}")
    floor_cpu, kept_share = head_tail_floor(tok, sample, args.max_length)
    print(f"head/tail floor: tokenizing only the text the kept {args.max_length} tokens cover "
          f"({100 * kept_share:.1f}% of the characters) and decoding them costs {floor_cpu:.3f} CPU-s per prompt "
          f"-> {floor_cpu * len(prompts):.1f} CPU-s for {len(prompts)} (the full path above: {batched_cpu:.1f} CPU-s)")
    from bench.figures import record_figure

    record_figure("longbench_v2_prep.batched_s", round(batched, 1), "s", f"{len(prompts)} prompts, ~{args.tokens} tokens")
    record_figure("longbench_v2_prep.tokenizer_passes", round(counting.passes / len(prompts), 2), "per prompt")
    record_figure("longbench_v2_prep.batched_cpu_s", round(batched_cpu, 1), "s", f"{len(prompts)} prompts")
    record_figure("longbench_v2_prep.head_tail_floor_cpu_s", round(floor_cpu * len(prompts), 1), "s",
                  f"projected from {len(sample)} prompts; kept text {100 * kept_share:.1f}% of the characters")


if __name__ == "__main__":
    main()
