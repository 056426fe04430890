"""Generate the tiny tasks' JSONL fixtures deterministically.

    python -m tasks.tiny.generate            # rewrites tasks/tiny/data/*.jsonl
    python -m tasks.tiny.generate --check    # exit 1 if the shipped files differ

Lengths are measured in tokens of the embedded tiny tokenizer (the one committed with
`assets/tiny-qwen3-skilled`, which `longact model build-tiny` rebuilds byte for byte), so the
needle tasks really span 256-1024 tokens for the default model. The files are committed; tests
regenerate them and compare, so the generator and the fixtures cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from pathlib import Path

from tasks.ruler.sources import NOISE_HAYSTACK
from tasks.tiny.utils import niah_prompt

DATA_DIR = Path(__file__).parent / "data"
SEED = 1234

# Haystack: RULER's noise sentence (tasks/ruler/sources.py); other filler words are our own,
# short, repetitive, and free of digits so the needle is the only number.
COLORS = ["red", "blue", "green", "yellow", "orange", "purple", "silver", "golden"]
THINGS = ["river", "mountain", "forest", "village", "castle", "bridge", "lake", "tower", "garden",
          "harbor", "market", "library"]
PLACES = ["North", "South", "East", "West", "Old", "New", "High", "Low"]
FILLER_WORDS = ("the old road runs past a quiet field where people walk in the morning and the "
                "wind moves over long grass while birds sing near the small house by the water").split()


TOKENIZER_DIR = Path(__file__).resolve().parents[2] / "assets" / "tiny-qwen3-skilled"


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER_DIR)


def _ntok(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def _filler(rng: random.Random, n_sentences: int) -> list[str]:
    out = []
    for _ in range(n_sentences):
        n = rng.randint(6, 14)
        out.append(" ".join(rng.choice(FILLER_WORDS) for _ in range(n)).capitalize() + ".")
    return out


def gen_mc(rng: random.Random, n: int = 40, domains: tuple[str, ...] = ("Synthetic facts",),
           id_prefix: str = "tiny-mc") -> list[dict]:
    """LongBench-v2-shaped items: a document of facts, a four-choice question about one of them."""
    lengths = {"short": 12, "medium": 30, "long": 70}
    rows = []
    for i in range(n):
        length = ["short", "medium", "long"][i % 3]
        difficulty = "easy" if i % 5 < 2 else "hard"
        things = rng.sample(THINGS, 4)
        facts = {t: f"{rng.choice(PLACES)} {rng.choice(COLORS)}" for t in things}
        target = things[0]
        sentences = _filler(rng, lengths[length])
        for t, v in facts.items():
            sentences.insert(rng.randrange(len(sentences) + 1), f"The {t} is called {v}.")
        gold = facts[target]
        wrong = set()
        while len(wrong) < 3:
            cand = f"{rng.choice(PLACES)} {rng.choice(COLORS)}"
            if cand != gold:
                wrong.add(cand)
        options = sorted(wrong) + [gold]
        rng.shuffle(options)
        letter = "ABCD"[options.index(gold)]
        rows.append({
            "_id": f"{id_prefix}-{i:03d}", "domain": domains[i % len(domains)], "sub_domain": "Names",
            "difficulty": difficulty, "length": length,
            "question": f"What is the {target} called?",
            "choice_A": options[0], "choice_B": options[1], "choice_C": options[2], "choice_D": options[3],
            "answer": letter, "context": " ".join(sentences),
        })
    return rows


def gen_niah(rng: random.Random, tok, n: int = 45) -> list[dict]:
    """RULER niah_single_1-shaped items (noise haystack, number needle) at 256/512/1024 tokens."""
    rows = []
    targets = [256, 512, 1024]
    for i in range(n):
        target = targets[i % 3]
        key = f"{rng.choice(PLACES).lower()}-{rng.choice(THINGS)}"
        value = str(rng.randint(1_000_000, 9_999_999))
        needle = f"One of the special magic numbers for {key} is: {value}."
        depth = rng.random()

        def build(n_noise: int) -> str:
            hay = [NOISE_HAYSTACK] * n_noise
            hay.insert(int(depth * len(hay)), needle)
            return " ".join(hay)

        # Grow the haystack until one more sentence would push the prompt past the target.
        reps = 1
        while _ntok(tok, niah_prompt({"context": build(reps + 1), "query": key})) <= target:
            reps += 1
        context = build(reps)
        rows.append({"id": f"tiny-niah-{i:03d}", "length": target, "context": context, "query": key,
                     "outputs": [value], "depth": round(depth, 4)})
    return rows


def gen_passkey(rng: random.Random, n: int = 30, reps: tuple[int, int] = (10, 40),
                after: tuple[int, int] | None = None) -> list[dict]:
    """InfiniteBench passkey-shaped items: the noise sentence repeated `reps` times (an inclusive
    range) with the needle at a random depth; or, given `after`, `reps` sentences before the
    needle and `after` between it and the question, so the needle's distance is controlled."""
    rows = []
    for i in range(n):
        key = str(rng.randint(10000, 99999))
        n_reps = rng.randint(*reps)
        at = rng.randrange(n_reps + 1) if after is None else n_reps
        hay = [NOISE_HAYSTACK] * (n_reps if after is None else n_reps + rng.randint(*after))
        hay.insert(at, f"The pass key is {key}. Remember it. {key} is the pass key.")
        rows.append({"id": i, "context": " ".join(hay), "input": "What is the pass key?",
                     "answer": [key], "options": []})
    return rows


def gen_kv(rng: random.Random, n: int = 30) -> list[dict]:
    """InfiniteBench kv_retrieval-shaped items (JSON object of uuid keys and values)."""
    rows = []
    for i in range(n):
        n_pairs = rng.randint(4, 16)
        pairs = {str(uuid.UUID(int=rng.getrandbits(128), version=4)): str(uuid.UUID(int=rng.getrandbits(128), version=4))
                 for _ in range(n_pairs)}
        key = rng.choice(sorted(pairs))
        rows.append({"id": i, "context": json.dumps(pairs, indent=1),
                     "input": f'Key: "{key}"\nThe value associated with the specified key is: ',
                     "answer": [pairs[key]], "options": []})
    return rows


FAR_BEFORE, FAR_AFTER = (0, 4), (27, 33)
"""tiny_passkey_far and the `passkey_far` RL prompts: 0-4 noise sentences, the needle, then 27-33
more (about 1.15k-1.4k tiny tokens between the needle and the question). The skilled base learned
retrieval over shorter distances (its curriculum and tiny_passkey: up to 40 sentences with the
needle at a random depth); here it samples the right key about half the time at temperature 1,
so GRPO groups have mixed rewards. The demo's learning task."""

LONGBENCH_FIXTURE = Path(__file__).resolve().parent.parent / "longbench_v2" / "data" / "fixture.jsonl"


def generate() -> dict[str, list[dict]]:
    """File name (relative to DATA_DIR, or absolute) -> rows."""
    tok = _tokenizer()
    return {
        str(LONGBENCH_FIXTURE): gen_mc(random.Random(SEED + 4), n=12, id_prefix="lbv2-fixture",
                                       domains=("Single-Document QA", "Long-dialogue History Understanding")),
        "tiny_mc.jsonl": gen_mc(random.Random(SEED)),
        "tiny_niah.jsonl": gen_niah(random.Random(SEED + 1), tok),
        "tiny_passkey.jsonl": gen_passkey(random.Random(SEED + 2)),
        "tiny_kv.jsonl": gen_kv(random.Random(SEED + 3)),
        "tiny_passkey_far.jsonl": gen_passkey(random.Random(SEED + 5), reps=FAR_BEFORE, after=FAR_AFTER),
    }


def serialize(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    args = ap.parse_args(argv)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, rows in generate().items():
        text = serialize(rows)
        path = DATA_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({len(rows)} rows)")
    if stale:
        print("stale fixtures (run `python -m tasks.tiny.generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
