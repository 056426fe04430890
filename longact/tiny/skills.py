"""Teach the tiny model the retrieval skills of the tiny tasks, so comparisons show real numbers.

    longact model train-tiny-skills --base models/tiny-qwen3 --out models/tiny-qwen3-skilled

The random tiny model scores ~0 everywhere, which makes a baseline-vs-LongAct table uninformative.
This runs a short supervised curriculum on freshly generated passkey items (optionally needle
items too; never the evaluation fixtures: other seeds, same shapes): haystacks start at a couple of sentences and grow
to the tiny tasks' lengths, batches of 8, loss on the answer tokens only. Two attention layers
learn to copy the number that follows its key (an induction-style lookup). On 2 CPU cores 1,500
steps take about 15 minutes; the result is committed under `assets/` with the command and its
training log, so `make demo` never retrains.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tasks.tiny.utils import HAYSTACK, niah_prompt, passkey_prompt

PLACES = ("north", "south", "river", "forest", "harbor", "valley", "castle", "market")
THINGS = ("lamp", "door", "stone", "bird", "boat", "coin", "map", "bell")


def passkey_item(rng: random.Random, max_reps: int) -> tuple[dict, str]:
    key = str(rng.randint(10000, 99999))
    reps = rng.randint(0, max_reps)
    hay = [HAYSTACK] * reps
    hay.insert(rng.randrange(reps + 1), f"The pass key is {key}. Remember it. {key} is the pass key.")
    return {"context": " ".join(hay), "input": "What is the pass key?"}, key


def needle_item(rng: random.Random, max_reps: int) -> tuple[dict, str]:
    key = f"{rng.choice(PLACES)}-{rng.choice(THINGS)}"
    value = str(rng.randint(1_000_000, 9_999_999))
    reps = rng.randint(1, max_reps)
    hay = [HAYSTACK] * reps
    hay.insert(rng.randrange(reps + 1), f"One of the special magic numbers for {key} is: {value}.")
    return {"context": " ".join(hay), "query": key}, value


def training_pair(rng: random.Random, tok, max_reps: int, needle_share: float) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) in the exact form the tiny tasks send them."""
    if rng.random() >= needle_share:
        doc, answer = passkey_item(rng, max_reps)
        prompt = tok.apply_chat_template([{"role": "user", "content": passkey_prompt(doc)}], tokenize=False,
                                         add_generation_prompt=True)
        target = answer + "<|im_end|>"
    else:
        doc, answer = needle_item(rng, max_reps)
        prompt, target = niah_prompt(doc), f" {answer}."
    return tok(prompt, add_special_tokens=False)["input_ids"], tok(target, add_special_tokens=False)["input_ids"]


def train_tiny_skills(base: str, out: str, steps: int = 1500, batch: int = 8, lr: float = 2e-3,
                      max_reps: int = 40, seed: int = 5, needle_share: float = 0.0, progress: bool = True) -> dict:
    """`needle_share` of the items are tiny_niah-shaped, the rest passkey-shaped. Measured here:
    passkey alone reaches ~80% on tiny_passkey in 1,500 steps; a 50/50 mix learned neither in
    1,600 (loss ~1.0), so the default teaches the passkey skill only."""
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = Qwen3ForCausalLM.from_pretrained(base, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    log, t0 = [], time.monotonic()
    model.train()
    bar = range(steps)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc="tiny skills", unit="step")
    for step in bar:
        reps = 2 + int((max_reps - 2) * min(1.0, step / (0.7 * steps)))  # curriculum: longer haystacks
        pairs = [training_pair(rng, tok, reps, needle_share) for _ in range(batch)]
        length = max(len(p) + len(t) for p, t in pairs)
        ids = torch.tensor([p + t + [pad] * (length - len(p) - len(t)) for p, t in pairs])
        mask = torch.tensor([[1] * (len(p) + len(t)) + [0] * (length - len(p) - len(t)) for p, t in pairs])
        labels = torch.tensor([[-100] * len(p) + t + [-100] * (length - len(p) - len(t)) for p, t in pairs])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "max_reps": reps,
                        "seconds": round(time.monotonic() - t0, 1)})
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    spec = Path(base) / "longact_tiny_spec.json"
    if spec.is_file():  # same architecture and tokenizer as the base tiny model
        (out_dir / "longact_tiny_spec.json").write_text(spec.read_text())
    summary = {"base": str(base), "steps": steps, "batch": batch, "lr": lr, "max_reps": max_reps, "seed": seed,
               "needle_share": needle_share,
               "seconds": round(time.monotonic() - t0, 1), "log": log}
    (out_dir / "training_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
