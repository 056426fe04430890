import hashlib

from longact.tiny.model import TinyModelSpec, build_tiny_model


def _digests(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again")
    assert _digests(again) == _digests(tiny_model_dir)
    assert "model.safetensors" in _digests(again)


def test_other_seed_changes_weights(tmp_path, tiny_model_dir):
    other = build_tiny_model(tmp_path / "other", TinyModelSpec(seed=1))
    assert _digests(other)["model.safetensors"] != _digests(tiny_model_dir)["model.safetensors"]


def test_shape_and_chat_template(tiny_model_dir, tiny_tokenizer):
    import json

    from safetensors import safe_open

    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"] and cfg["head_dim"] == 64
    with safe_open(tiny_model_dir / "model.safetensors", "pt") as f:
        n = sum(f.get_slice(k).get_shape().numel() if hasattr(f.get_slice(k).get_shape(), "numel")
                else __import__("math").prod(f.get_slice(k).get_shape()) for k in f.keys())
    assert 300_000 < n < 700_000
    text = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                              add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    no_think = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=False)
    assert no_think.endswith("<think>\n\n</think>\n\n")
    # byte-level BPE: any text round-trips
    s = "Pass key 71432 — ünïcode ✓"
    assert tiny_tokenizer.decode(tiny_tokenizer(s)["input_ids"]) == s


def test_model_runs_forward(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    out = model(torch.tensor([[1, 5, 9]]))
    assert out.logits.shape == (1, 3, 512)
