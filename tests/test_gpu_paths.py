"""What a GPU run calls that this CPU can still check, by the callee's documented contract:

- flash-attention's varlen kernel: the packed forward runs through transformers' own
  flash-attention integration with the kernel replaced by a reference that enforces
  flash-attn 2's documented signature of `flash_attn_varlen_func` (q/k/v [total, heads, head_dim]
  in fp16/bf16, int32 `cu_seqlens` of batch + 1 bounds ending at total, int `max_seqlen`, heads
  a multiple of the KV heads, head_dim <= 256, causal) and computes the same attention with SDPA
  row by row: the log-probs must equal the SDPA path's.
- vLLM's CUDA server: every flag the harness passes is parsed and validated by vLLM's own
  `vllm serve` parser (the CPU build ships the same argument code as the CUDA build).
- the trainer's colocated engine: the GPU presets' `vllm:` keys are `vllm.EngineArgs` fields.

(Fake CUDA tensors can be made under FakeTensorMode on a CPU-only torch, but `.to("cuda")` of a
host tensor fails there, so the host-to-device copies stay for the GPU check.)
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from training.logprobs import pack, prepare, token_logps

FLASH_SIM = "flash_attention_sim"  # a flash-attention implementation name: attends within rows (attends_within_rows)
calls: list[dict] = []


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, block_table=None):
    """flash-attn 2.x's signature; its docstring's contract asserted, SDPA computing the result."""
    total_q, heads, head_dim = q.shape
    assert q.dim() == k.dim() == v.dim() == 3 and k.shape == v.shape and k.shape[2] == head_dim
    assert q.dtype in (torch.float16, torch.bfloat16) and k.dtype == v.dtype == q.dtype, q.dtype
    assert heads % k.shape[1] == 0 and head_dim <= 256
    for cu, total, longest in ((cu_seqlens_q, total_q, max_seqlen_q), (cu_seqlens_k, k.shape[0], max_seqlen_k)):
        assert cu.dtype == torch.int32 and cu.dim() == 1 and int(cu[0]) == 0 and int(cu[-1]) == total
        assert isinstance(longest, int) and longest == int(cu.diff().max()), (longest, cu)
    assert causal and dropout_p == 0.0 and window_size == (-1, -1) and not return_attn_probs
    calls.append({"rows": cu_seqlens_q.numel() - 1, "dtype": q.dtype, "heads": heads, "kv_heads": k.shape[1]})
    bounds = cu_seqlens_q.tolist()
    out = [F.scaled_dot_product_attention(q[s:e].transpose(0, 1), k[s:e].transpose(0, 1), v[s:e].transpose(0, 1),
                                          is_causal=True, scale=softmax_scale, enable_gqa=True).transpose(0, 1)
           for s, e in zip(bounds, bounds[1:])]
    return torch.cat(out)


@pytest.fixture
def flash_sim(monkeypatch):
    """transformers' flash-attention integration, loading our reference in place of flash_attn."""
    import transformers.modeling_flash_attention_utils as fau
    from transformers import AttentionInterface
    from transformers.integrations.flash_attention import flash_attention_forward

    def lazy_imports(implementation, *args, **kwargs):
        assert implementation == FLASH_SIM
        return None, flash_attn_varlen_func, None, fau._pad_input, fau._unpad_input

    monkeypatch.setattr(fau, "_lazy_imports", lazy_imports)
    monkeypatch.setattr(fau, "_loaded_implementation", None)
    AttentionInterface.register(FLASH_SIM, flash_attention_forward)
    calls.clear()
    yield
    monkeypatch.setattr(fau, "_loaded_implementation", None)


def _rows(vocab: int):
    g = torch.Generator().manual_seed(0)
    lengths = [(40, 9), (23, 5), (57, 16)]  # (prompt, completion) per row
    return [(torch.randint(3, vocab, (p + c,), generator=g), p) for p, c in lengths], max(c for _, c in lengths)


def test_packed_forward_meets_flash_attn_varlen_contract(tiny_model_dir, flash_sim):
    from transformers import AutoModelForCausalLM

    sdpa = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    prepare(sdpa)
    flash = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16, attn_implementation=FLASH_SIM)
    prepare(flash)
    rows, width = _rows(sdpa.config.vocab_size)
    packed = pack(rows, width, "cpu")
    with torch.no_grad():
        want, _ = token_logps(sdpa, packed)
        got, _ = token_logps(flash, packed)
    assert len(calls) == flash.config.num_hidden_layers  # one varlen call per layer: the row bounds reached the kernel
    assert calls[0] == {"rows": 3, "dtype": torch.bfloat16, "heads": flash.config.num_attention_heads,
                        "kv_heads": flash.config.num_key_value_heads}
    torch.testing.assert_close(got, want, atol=2e-2, rtol=0)


def test_vllm_parses_every_flag_the_harness_passes(tmp_path):
    """The harness's `vllm serve` command for a GPU run, through vLLM's own parser and checks."""
    pytest.importorskip("vllm")
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from harness.backends.serve import ServerConfig

    config = ServerConfig(model=str(tmp_path), served_model_name="m", dtype="bfloat16", tensor_parallel_size=8,
                          data_parallel_size=2, max_model_len=131_072, api_key="k", trust_remote_code=True,
                          extra_args=["--gpu-memory-utilization", "0.9", "--enable-prefix-caching"])
    cmd = config.command(8000)
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(cmd[3:])
    validate_parsed_serve_args(args)
    assert (args.tensor_parallel_size, args.data_parallel_size, args.max_model_len, args.dtype) == (8, 2, 131_072, "bfloat16")
    assert (args.port, args.load_format, args.api_key, args.gpu_memory_utilization) == (8000, "safetensors", ["k"], 0.9)


@pytest.mark.parametrize("preset", ["qwen3-8b-grpo", "qwen3-8b-dapo", "qwen3-4b-grpo", "qwen3-4b-dapo"])
def test_gpu_presets_engine_keys_are_vllm_engine_args(preset):
    pytest.importorskip("vllm")
    import dataclasses
    from pathlib import Path

    from vllm import EngineArgs

    from training.config import load_config

    cfg = load_config(str(Path(__file__).resolve().parent.parent / "training/configs" / f"{preset}.yaml"))
    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    assert set(cfg.vllm) | {"seed"} <= fields  # VLLMRollout adds seed and passes the rest as vllm.LLM(**kwargs)

