"""The embedded default model: a deterministic tiny Qwen3 built fully offline.

    longact model build-tiny --out models/tiny-qwen3

What it is: a byte-level BPE tokenizer (512 ids) trained with `tokenizers` on text this module
generates, a ChatML chat template with an optional thinking block, and a randomly initialised
`Qwen3ForCausalLM` (hidden 128, 2 layers, 4 query heads, 2 KV heads, head_dim 64; ~0.46M
parameters) saved as HF safetensors. vLLM's CPU attention rejects head_dim 16, so head_dim stays
64 even though hidden is 128.

Why random weights are enough: the model exists so that every path (tokenizer, chat template,
truncation, serving, lm-eval, scoring, training) runs for real in seconds on two CPU cores. Its
answers are noise; tests check the plumbing and the accounting, never its accuracy.

Same seed => byte-identical files (tests/test_tiny_model.py checks it).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

# Words for the tokenizer's training text; the tiny tasks draw from the same pool so the BPE
# learns merges that actually occur in evaluation prompts.
WORDS = (
    "the a an of to and in is was for on that with as by at from it this be are or which "
    "answer question text read following correct choice choices format response insert here "
    "key value pass number remember find special magic hidden needle haystack grass green sky "
    "blue sun yellow here we go there and back again what is the passkey in document context "
    "easy hard short medium long book chapter city river mountain forest village king queen "
    "north south east west red orange purple silver golden quiet loud ancient modern small large "
    "report story letter record list table line word words uuid json object extract provided "
    "one two three four five six seven eight nine ten zero"
).split()

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# ChatML, as Qwen3 uses it. `enable_thinking` (default true, as in Qwen3) makes the template leave
# the assistant turn open so the model writes `<think>...</think>` itself; false pre-fills an empty
# thinking block. Official-mode tasks send plain user turns; reasoning mode relies on the block.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny model. Defaults are the embedded default the demo and tests use."""

    seed: int = 0
    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    corpus_lines: int = 4000


def _training_corpus(spec: TinyModelSpec) -> list[str]:
    """Deterministic English-like lines plus digits, so numbers and words get merges."""
    rng = random.Random(spec.seed)
    lines = []
    for _ in range(spec.corpus_lines):
        n = rng.randint(5, 25)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), str(rng.randint(0, 99999)))
        line = " ".join(words).capitalize() + rng.choice([".", "?", ":", "."])
        lines.append(line)
    return lines


def build_tokenizer(spec: TinyModelSpec):
    """Train the byte-level BPE and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(spec), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=spec.max_position_embeddings,
    )


def build_model(spec: TinyModelSpec, tokenizer):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        rope_theta=spec.rope_theta,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = Qwen3ForCausalLM(config)
    model.eval()
    return model


def build_tiny_model(out_dir: str | os.PathLike, spec: TinyModelSpec | None = None) -> Path:
    """Build the tiny model into `out_dir` (created; existing model files are overwritten)."""
    spec = spec or TinyModelSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # tokenizers trains with a thread pool; one thread keeps merges identical run to run.
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    tokenizer = build_tokenizer(spec)
    model = build_model(spec, tokenizer)
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "longact_tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2, sort_keys=True) + "\n")
    return out


def is_tiny_model_dir(path: str | os.PathLike) -> bool:
    """True when `path` holds a complete tiny model (used to reuse an existing build)."""
    p = Path(path)
    return all((p / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json", "longact_tiny_spec.json"))


def perturbed_copy(base: str | os.PathLike, out: str | os.PathLike, seed: int, scale: float = 0.5) -> Path:
    """A checkpoint of `base`'s architecture and tokenizer with other weights (each tensor plus
    Gaussian noise of `scale` times its mean magnitude): stands in for the checkpoints of a
    training run in sweep tests and benchmarks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g))
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
