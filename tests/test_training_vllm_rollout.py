"""Rollout backends with per-prompt seeds; VLLMRollout on vLLM's CPU build with the tiny model.

The vLLM tests share one in-process engine (construction plus the first, warming generate take
several seconds on two cores). Sync tests put the original weights back before they return.
"""

from __future__ import annotations

import copy

import pytest
import torch

from training.logprobs import pack, prepare, token_logps, unpadded
from training.parallel import weight_buckets
from training.rollout import HFRollout, SamplingConfig, VLLMRollout

PROMPTS = ["What is the passkey in the document?", "Read the following text and answer the question."]
LOGP_TOL = 1e-4  # float32 on both sides; measured differences are ~1e-6
BLOCK = 32  # KV block size: prefix caching reuses whole blocks, so prompts longer than this hit it
LONG = "Read the following text and answer the question: the quiet river runs north of the old city."


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prepare(model)
    return model


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)  # own copy: rollouts set padding_side


@pytest.fixture(scope="module")
def vllm_rollout(tiny_model_dir, tok):
    pytest.importorskip("vllm")
    ro = VLLMRollout(str(tiny_model_dir), tok, SamplingConfig(max_new_tokens=12), max_prompt_tokens=64,
                     enforce_eager=True,  # eager: torch.compile would add ~25 s to construction on CPU
                     block_size=BLOCK)  # the CPU default (128) is longer than any prompt here
    yield ro
    ro.llm.llm_engine.engine_core.shutdown()


def _rows(ro):
    """Each row's unpadded (prompt ids, completion ids)."""
    P = ro.prompt_len
    return [(ids[:P][am[:P].bool()].tolist(), ids[P:][cm.bool()].tolist())
            for ids, am, cm in zip(ro.input_ids, ro.attention_mask, ro.completion_mask)]


def _check_layout(ro, tok, prompts, n, max_new):
    B, P = len(prompts) * n, ro.prompt_len
    C = ro.input_ids.shape[1] - P
    assert ro.input_ids.shape == ro.attention_mask.shape == (B, P + C)
    assert ro.completion_mask.shape == (B, C) and len(ro.texts) == B and 1 <= C <= max_new
    assert torch.equal(ro.attention_mask[:, P:], ro.completion_mask)
    for i, (p, c) in enumerate(_rows(ro)):
        expect = tok(tok.apply_chat_template([{"role": "user", "content": prompts[i // n]}], tokenize=False,
                                             add_generation_prompt=True),  # SamplingConfig.enable_thinking None
                     add_special_tokens=False)["input_ids"]
        assert p == expect  # left-padded: the real prompt tokens end exactly at P
        assert ro.attention_mask[i, :P].tolist() == [0] * (P - len(p)) + [1] * len(p)
        L = len(c)
        assert L >= 1 and ro.completion_mask[i].tolist() == [1] * L + [0] * (C - L)
        assert (ro.input_ids[i, P + L:] == tok.pad_token_id).all()
        assert tok.eos_token_id not in c[:-1]  # nothing counted after an EOS
        if L < max_new:  # stopped early: only on EOS, which is kept and counted
            assert c[-1] == tok.eos_token_id
        assert ro.texts[i] == tok.decode(c, skip_special_tokens=True)
    if ro.logprobs is not None:
        assert ro.logprobs.shape == (B, C)
        assert (ro.logprobs[ro.completion_mask == 0] == 0).all() and (ro.logprobs[ro.completion_mask == 1] < 0).all()


def _max_logp_gap(ro, model, temperature=1.0, raw=True):
    """Largest |sampling log-prob - the trainer's log-prob of `model` on the same tokens| over counted
    tokens; the trainer's raw log-probs (before temperature) or, raw=False, those at the temperature."""
    packed = pack([unpadded(ids, am, ro.prompt_len) for ids, am in zip(ro.input_ids, ro.attention_mask)],
                  ro.completion_mask.shape[1], "cpu")
    with torch.no_grad():
        lp, _, raw_lp = token_logps(model, packed, temperature, raw=True)
    return float(((ro.logprobs - (raw_lp if raw else lp)).abs() * ro.completion_mask).max())


def _perturbed(model, scale=0.05):
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return out


def _full_sync(ro, model):
    """The sync before streaming, reproduced: every weight as a full tensor, one reload_weights call."""
    weights = [(name, t.detach()) for name, t in model.state_dict().items()]
    ro.llm.collective_rpc(lambda worker: worker.reload_weights(weights_iterator=weights, is_checkpoint_format=True))
    assert ro.llm.reset_prefix_cache()


# ---- HFRollout with seeds (fast) --------------------------------------------------------------

def test_hf_seeded_groups_independent_of_batch_and_global_rng(hf_model, tok):
    ro = HFRollout(hf_model, tok, SamplingConfig(max_new_tokens=8), max_prompt_tokens=64)
    state = torch.get_rng_state()
    alone = ro.generate(PROMPTS[:1], 3, seeds=[7])
    together = ro.generate([PROMPTS[1], PROMPTS[0]], 3, seeds=[3, 7])
    assert torch.equal(torch.get_rng_state(), state)  # the trainer's checkpointed RNG is untouched
    assert together.prompt_len > alone.prompt_len  # PROMPTS[1] is longer: rows really were re-padded
    assert _rows(alone) == _rows(together)[3:] and alone.texts == together.texts[3:]
    assert _rows(together)[:3] != _rows(together)[3:]
    _check_layout(together, tok, [PROMPTS[1], PROMPTS[0]], 3, 8)
    assert together.logprobs is None
    torch.manual_seed(1)  # unseeded: still the global RNG, as before
    a = ro.generate(PROMPTS, 2)
    torch.manual_seed(1)
    assert torch.equal(a.input_ids, ro.generate(PROMPTS, 2).input_ids)


# ---- VLLMRollout (slow: a real engine) ----------------------------------------------------------

@pytest.mark.slow
def test_vllm_layout_and_seeds(vllm_rollout, tok):
    ro = vllm_rollout.generate(PROMPTS, 3, seeds=[11, 12])
    _check_layout(ro, tok, PROMPTS, 3, 12)
    rows = _rows(ro)
    assert rows == _rows(vllm_rollout.generate(PROMPTS, 3, seeds=[11, 12]))  # same seeds, same tokens
    assert len({tuple(c) for _, c in rows}) == 6  # members and groups all distinct (seeds 11, 12 adjacent)
    other = _rows(vllm_rollout.generate(PROMPTS, 3, seeds=[21, 22]))
    assert all(a[1] != b[1] for a, b in zip(rows, other))
    assert _rows(vllm_rollout.generate(PROMPTS[1:], 3, seeds=[12])) == rows[3:]  # batch-independent
    unseeded = vllm_rollout.generate(PROMPTS, 2)
    _check_layout(unseeded, tok, PROMPTS, 2, 12)
    assert vllm_rollout.record()["backend"] == "vllm" and vllm_rollout.record()["dtype"] == "float32"


@pytest.mark.slow
def test_vllm_logprobs_match_hf_policy(vllm_rollout, hf_model):
    ro = vllm_rollout.generate(PROMPTS, 3, seeds=[5, 6])
    assert _max_logp_gap(ro, hf_model) < LOGP_TOL


@pytest.mark.slow
def test_vllm_logprobs_at_temperature_compare_like_with_like(vllm_rollout, hf_model, monkeypatch):
    # The engine returns raw log-probs (before temperature); the trainer's loss uses logits / T and its
    # mismatch metric the raw ones, which match the engine's at T = 2 as at T = 1.
    monkeypatch.setattr(vllm_rollout, "sampling", SamplingConfig(max_new_tokens=12, temperature=2.0))
    ro = vllm_rollout.generate(PROMPTS, 3, seeds=[5, 6])
    assert _max_logp_gap(ro, hf_model, temperature=2.0) < LOGP_TOL
    assert _max_logp_gap(ro, hf_model, temperature=2.0, raw=False) > 100 * LOGP_TOL  # the loss's are another quantity


@pytest.mark.slow
def test_vllm_sync_moves_the_engine_weights(vllm_rollout, hf_model):
    perturbed = _perturbed(hf_model)
    before = vllm_rollout.generate([LONG], 2, seeds=[5])  # leaves LONG's first block in the prefix cache
    assert before.attention_mask[0, :before.prompt_len].sum() > BLOCK
    try:
        vllm_rollout.sync(perturbed)
        ro = vllm_rollout.generate([*PROMPTS, LONG], 3, seeds=[5, 6, 5])
        assert _max_logp_gap(ro, perturbed) < LOGP_TOL  # fails if KV cached under the old weights is reused
        assert _max_logp_gap(ro, hf_model) > 100 * LOGP_TOL  # the old weights no longer explain them
    finally:
        vllm_rollout.sync(hf_model)
    assert _max_logp_gap(vllm_rollout.generate(PROMPTS, 3, seeds=[5, 6]), hf_model) < LOGP_TOL


@pytest.mark.slow
def test_vllm_completion_mask_keeps_the_eos(vllm_rollout, hf_model, tok):
    # Make EOS likely, not certain, so lengths vary: a constant feature d in every embedding
    # dominates the normalised final hidden state (~sqrt(hidden) along d), and the tied output row
    # of EOS has 0.45 more of it: EOS's logit is ~5 above the rest, p(EOS) ~ 0.25 per token.
    eos_heavy, d = copy.deepcopy(hf_model), 0
    with torch.no_grad():
        emb = eos_heavy.get_input_embeddings().weight
        emb[:, d] += 1.0
        emb[tok.eos_token_id, d] += 0.45
    try:
        vllm_rollout.sync(eos_heavy)
        ro = vllm_rollout.generate(PROMPTS, 3, seeds=[1, 2])
    finally:
        vllm_rollout.sync(hf_model)
    _check_layout(ro, tok, PROMPTS, 3, 12)
    lengths = ro.completion_mask.sum(1)
    assert lengths.min() < lengths.max()  # some rows stopped on EOS and are padded after it
    assert sum(c[-1] == tok.eos_token_id for _, c in _rows(ro)) >= 2
    assert _max_logp_gap(ro, eos_heavy) < LOGP_TOL


@pytest.mark.slow
def test_vllm_streamed_sync_equals_the_full_sync(vllm_rollout, hf_model, monkeypatch):
    # Buckets of 100 KiB: the embedding (256 KiB) and q_proj (128 KiB) each travel alone, over a
    # bucket; q, k and v_proj, which vLLM fuses into one qkv_proj, arrive in different buckets.
    small = 100 * 2**10
    perturbed = _perturbed(hf_model)
    buckets = list(weight_buckets(perturbed, torch.float32, small))
    assert len(buckets) >= 8 and max(sum(t.nbytes for _, t in b) for b in buckets) > small
    assert next(i for i, b in enumerate(buckets) if any(n.endswith("k_proj.weight") for n, _ in b)) > \
        next(i for i, b in enumerate(buckets) if any(n.endswith("q_proj.weight") for n, _ in b))
    prompts, seeds = [*PROMPTS, LONG], [5, 6, 5]
    try:
        _full_sync(vllm_rollout, perturbed)
        full = vllm_rollout.generate(prompts, 3, seeds=seeds)
        vllm_rollout.sync(hf_model)  # away from the perturbed weights (default bucket: one call)
        assert _max_logp_gap(vllm_rollout.generate(prompts, 3, seeds=seeds), perturbed) > 100 * LOGP_TOL
        monkeypatch.setattr(vllm_rollout, "bucket_bytes", small)
        vllm_rollout.sync(perturbed)  # back, in many buckets: every one must be applied
        streamed = vllm_rollout.generate(prompts, 3, seeds=seeds)
    finally:
        vllm_rollout.sync(hf_model)
    assert _rows(streamed) == _rows(full)
    assert torch.equal(streamed.logprobs, full.logprobs)  # same float32 weights: bit-identical
    assert _max_logp_gap(streamed, perturbed) < LOGP_TOL


def test_vllm_sync_names_the_version_when_the_reload_path_is_missing(hf_model):
    vllm = pytest.importorskip("vllm")

    class OldEngine:  # a worker without the layerwise reload's hooks, as in older vLLM versions
        def collective_rpc(self, fn, args=()):
            return [fn(object(), *args)]

    ro = VLLMRollout.__new__(VLLMRollout)  # no engine construction: only sync's own logic runs
    ro.llm, ro.dtype, ro.bucket_bytes = OldEngine(), torch.float32, 2**20
    with pytest.raises(RuntimeError, match=f"vLLM {vllm.__version__}: .*VLLMRollout.sync needs updating"):
        ro.sync(hf_model)
