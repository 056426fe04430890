"""Time to build one 128k-token RULER sample per task, next to lm-eval's own RULER generator.

    python bench/ruler_build.py                 # 131072 tokens, all 13 tasks + lm-eval niah_single_1
    python bench/ruler_build.py --length 32768

Both sides use the same 32k-vocab byte-level BPE, trained offline on generated English-like
sentences, pseudo-words and numbers, in one process. lm-eval's side is its niah_single_1
generator on the noise ("repeat") haystack, one sample. Goal: >= 5x faster than lm-eval on
niah_single_1 and <= 1 s per 128k sample for every task. Essay tasks use the generated fallback
corpus unless --essay-path is given; QA tasks use the small fixtures (documents repeat to fill).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import record_figure  # noqa: E402
from bench.longbench_v2_prep import syllable_words  # noqa: E402


def english_bpe_32k():
    """A 32k byte-level BPE trained offline on the generated essay corpus, pseudo-words and numbers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tasks.ruler.sources import NOISE_HAYSTACK, generated_essay_corpus

    rng = random.Random(0)
    pseudo = syllable_words(rng, 40000)
    essay = generated_essay_corpus(400_000, seed=1).split(". ")

    def corpus():
        yield from essay
        for i in range(0, len(pseudo), 50):
            yield " ".join(pseudo[i:i + 50])
        for _ in range(2000):
            yield NOISE_HAYSTACK + " " + " ".join(str(rng.randint(0, 10**7)) for _ in range(20))

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def lm_eval_niah_single_1(tok, length: int) -> tuple[float, int]:
    from lm_eval.tasks.ruler.niah_utils import TEMPLATE
    from lm_eval.tasks.ruler.prepare_niah import generate_samples, get_haystack

    t0 = time.perf_counter()
    rows = generate_samples(get_haystack(type_haystack="repeat"), max_seq_length=length, template=TEMPLATE,
                            type_haystack="repeat", type_needle_k="words", type_needle_v="numbers",
                            num_samples=1, TOKENIZER=tok)
    elapsed = time.perf_counter() - t0
    return elapsed, len(tok(rows[0]["input"])["input_ids"]) if rows else -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length", type=int, default=131072)
    ap.add_argument("--essay-path", default=None)
    args = ap.parse_args()

    from tasks.ruler.build import BuildSpec, build_samples
    from tasks.ruler.constants import TASKS
    from tasks.ruler.synthetic import GENERATORS  # noqa: F401 - import cost outside the timings

    data = Path(__file__).resolve().parent.parent / "tasks" / "ruler" / "data"
    print("training a 32k-vocab byte-level BPE offline ...", flush=True)
    tok = english_bpe_32k()
    print(f"vocab {len(tok)}; target length {args.length} tokens\n")

    # Warm the one-off loads (word lists, corpus, QA files) so timings are per sample.
    for task in TASKS:
        build_samples(BuildSpec(task, 8192, 1, use_chat_template=False, essay_path=args.essay_path,
                                squad_path=str(data / "squad_fixture.json"),
                                hotpotqa_path=str(data / "hotpotqa_fixture.json")), tok)

    print(f"{'task':<18} {'seconds':>8} {'prompt tokens':>14} {'fill':>7}")
    ours = {}
    for task in TASKS:
        spec = BuildSpec(task, args.length, 1, use_chat_template=False, essay_path=args.essay_path,
                         squad_path=str(data / "squad_fixture.json"), hotpotqa_path=str(data / "hotpotqa_fixture.json"))
        t0 = time.perf_counter()
        doc = build_samples(spec, tok)[0]
        ours[task] = time.perf_counter() - t0
        print(f"{task:<18} {ours[task]:8.3f} {doc['prompt_tokens']:14d} {doc['fill']:7.4f}", flush=True)

    lm_s, lm_tokens = lm_eval_niah_single_1(tok, args.length)
    print(f"\nlm-eval niah_single_1 (noise haystack): {lm_s:.3f} s, {lm_tokens} prompt tokens")
    print(f"ours    niah_single_1:                  {ours['niah_single_1']:.3f} s")
    print(f"speed-up vs lm-eval: {lm_s / ours['niah_single_1']:.1f}x (goal >= 5x)")
    worst = max(ours, key=ours.get)
    print(f"slowest task: {worst} {ours[worst]:.3f} s per sample (goal <= 1 s); mean {sum(ours.values()) / len(ours):.3f} s")
    record_figure("ruler_build.speedup", round(lm_s / ours["niah_single_1"], 1), "x", f"{args.length} tokens")
    record_figure("ruler_build.slowest_s", round(ours[worst], 3), "s", f"{worst}, {args.length} tokens")


if __name__ == "__main__":
    main()
