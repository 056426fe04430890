"""The update path at long context and as the papers define it, on the skilled tiny model with
synthetic rows (no rollouts, so each test takes seconds):
- memory: log-probs of packed rows through the output layer at completion positions only, in
  chunks, nothing [*, V] kept for backward; activation checkpointing; token-budget micro-batches;
  accumulation exact at the gradient level (the weight-level tests in test_training_algos.py
  pass through Adam, whose first step is nearly sign(g) and would hide a wrong normaliser);
- fidelity: log-probs at the sampling temperature, calibration on the prompts the rollout sends,
  one precision for old and new log-probs, Clip-Cov / KL-Cov choices over the whole mini-batch."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from training import logprobs, parallel
from training import losses as L
from training.config import load_config
from training.logprobs import pack, prepare, token_logps, unpadded
from training.mask import LongActMask, MaskConfig
from training.train import calibration_batches
from training.update import Learner, Row, micro_batches, recompute_old_logps, update

ROOT = Path(__file__).resolve().parent.parent
SKILLED = ROOT / "assets" / "tiny-qwen3-skilled"
D = parallel.Dist()


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(SKILLED, dtype=torch.float32)
    prepare(m)
    return m


def _cfg(*extra: str):
    return load_config(None, [f"model={SKILLED}", "max_grad_norm=1e9", *extra])


def _rows(n=8, seed=0, vocab=512) -> list[Row]:
    """Rows in the rollout layout: prompts of 5..40 tokens left-padded to P, completions of 1..12
    tokens right-padded to C, advantages of both signs."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (int(torch.randint(5, 41, (), generator=g)),), generator=g) for _ in range(n)]
    comps = [torch.randint(3, vocab, (int(torch.randint(1, 13, (), generator=g)),), generator=g) for _ in range(n)]
    P, C = max(map(len, prompts)), max(map(len, comps))
    rows = []
    for p, c in zip(prompts, comps):
        ids, am = torch.zeros(P + C, dtype=torch.long), torch.zeros(P + C, dtype=torch.long)
        ids[P - len(p):P], ids[P:P + len(c)] = p, c
        am[P - len(p):P + len(c)] = 1
        rows.append(Row(ids, am, am[P:].clone(), P, torch.randn((), generator=g)))
    return rows


def _group_rows(sizes=(4, 1, 3), seed=1, vocab=512) -> list[Row]:
    """Rows as GRPO groups make them: each group's rows repeat one prompt (20..60 tokens) with
    their own completions (0..9 tokens, one empty), groups back to back."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (int(torch.randint(20, 61, (), generator=g)),), generator=g) for _ in sizes]
    pairs = [(p, torch.randint(3, vocab, (int(torch.randint(1, 10, (), generator=g)),), generator=g))
             for p, n in zip(prompts, sizes) for _ in range(n)]
    pairs[1] = (pairs[1][0], pairs[1][1][:0])
    P, C = max(len(p) for p, _ in pairs), max(len(c) for _, c in pairs)
    rows = []
    for p, c in pairs:
        ids, am = torch.zeros(P + C, dtype=torch.long), torch.zeros(P + C, dtype=torch.long)
        ids[P - len(p):P], ids[P:P + len(c)] = p, c
        am[P - len(p):P + len(c)] = 1
        rows.append(Row(ids, am, am[P:].clone(), P, torch.randn((), generator=g)))
    return rows


def _reference_logps(model, rows, temperature=1.0):
    """Each row alone, full logits, log_softmax(logits / T): [b, C]."""
    C = rows[0].completion.shape[0]
    out = torch.zeros(len(rows), C)
    for i, r in enumerate(rows):
        toks, p = unpadded(r.ids, r.attention, r.prompt_len)
        logits = model(input_ids=toks[None]).logits[0, p - 1:-1].float() / temperature
        out[i, :toks.shape[0] - p] = logits.log_softmax(-1).gather(-1, toks[p:, None]).squeeze(-1)
    return out


class _Capture(torch.optim.SGD):
    """An optimizer whose step records the gradients and moves nothing."""
    def step(self, closure=None):
        self.grads = {id(p): p.grad.detach().clone() for g in self.param_groups for p in g["params"] if p.grad is not None}


def _update_grads(model, rows, cfg, loss="ppo_clip"):
    opt = _Capture(model.parameters(), lr=0.0)
    mask = LongActMask.calibrate(model, [], MaskConfig(strategy="none"))
    stats = update(Learner(cfg, D, model, model, opt, mask, L.POLICY_LOSSES[loss], L.AGGREGATIONS[cfg.algo.aggregation]), rows)
    return [opt.grads[id(p)] for p in model.parameters()], stats


def _assert_same_grads(a, b, rtol=1e-5):
    scale = max(float(g.abs().max()) for g in a)
    assert scale > 1e-3  # a real gradient, not an update that did nothing
    worst = max(float((x - y).abs().max()) for x, y in zip(a, b))
    assert worst <= rtol * scale, (worst, scale)


# ---- memory ------------------------------------------------------------------------------------

def test_packed_logps_equal_each_row_alone_and_chunks_change_nothing(model, monkeypatch):
    rows = _rows()
    C = rows[0].completion.shape[0]
    cm = torch.stack([r.completion for r in rows]).float()
    packed = pack([unpadded(r.ids, r.attention, r.prompt_len) for r in rows], C, "cpu")
    lp, ent = token_logps(model, packed)
    ref = _reference_logps(model, rows)
    torch.testing.assert_close(lp * cm, ref, atol=2e-5, rtol=0)
    assert not ent.requires_grad and bool((ent[cm > 0] > 0).all()) and bool((lp[cm == 0] == 0).all())
    grad_whole = torch.autograd.grad((lp * cm).sum(), model.lm_head.weight)[0]
    monkeypatch.setattr(logprobs, "LOGITS_CHUNK_BYTES", 4 * 512 * 3)  # 3 tokens per chunk
    seen = []
    real = logprobs._chunk_logps
    monkeypatch.setattr(logprobs, "_chunk_logps", lambda h, *a: seen.append(h.shape[0]) or real(h, *a))
    lp3, _ = token_logps(model, packed)
    grad_chunked = torch.autograd.grad((lp3 * cm).sum(), model.lm_head.weight)[0]
    n_completion = int(cm.sum())
    # the output layer saw the completion positions only, 3 at a time (and again in backward)
    assert sum(seen) == 2 * n_completion and max(seen) == 3
    torch.testing.assert_close(lp3, lp, atol=1e-5, rtol=1e-6)  # matmul blocking differs by chunk size
    _assert_same_grads([grad_whole], [grad_chunked])


def test_a_shared_prompt_is_packed_once_and_each_row_keeps_its_own_logps(model, monkeypatch):
    """A GRPO group's rows repeat one prompt: packed once, each completion attending to the prompt
    and itself (never a sibling). Log-probs equal each row alone; the update's gradients equal
    those of the rows packed one by one."""
    rows = _group_rows()
    C = rows[0].completion.shape[0]
    cm = torch.stack([r.completion for r in rows]).float()
    seqs = [unpadded(r.ids, r.attention, r.prompt_len) for r in rows]
    packed = pack(seqs, C, "cpu")
    prompts = [seqs[0][1], seqs[4][1], seqs[5][1]]
    assert packed.shared.tokens == sum(prompts) + int(cm.sum()) < packed.tokens
    assert [(p, len(cs)) for _, p, cs in packed.shared.segments] == list(zip(prompts, (4, 1, 3)))
    lp, ent = token_logps(model, packed, temperature=0.7)
    torch.testing.assert_close(lp * cm, _reference_logps(model, rows, temperature=0.7), atol=2e-5, rtol=0)
    assert bool((lp[1] == 0).all()) and bool((ent[cm > 0] > 0).all())

    cfg = _cfg("micro_batch=8")
    shared, _ = _update_grads(model, rows, cfg)
    monkeypatch.setattr(logprobs, "_share_prompts", lambda *a: None)
    assert pack(seqs, C, "cpu").shared is None
    alone, _ = _update_grads(model, rows, cfg)
    _assert_same_grads(shared, alone)


def test_packed_logps_on_a_llama_equal_each_row_alone(monkeypatch):
    """Llama (SmolLM2's architecture) has no per-layer mask types and builds its mask itself:
    inside a packed forward it builds none (the attention reads the row bounds, a group's prompt
    packed once), and rows still attend only within themselves; outside it (generate) the mask is
    sdpa's, so greedy generation equals the unprepared model's."""
    from transformers import LlamaConfig, LlamaForCausalLM, masking_utils

    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256))
    plain = copy.deepcopy(llama)
    prepare(llama)
    masks = []
    real_mask = masking_utils.sdpa_mask
    monkeypatch.setattr(masking_utils, "sdpa_mask", lambda *a, **k: masks.append(1) or real_mask(*a, **k))
    for rows in (_rows(), _group_rows()):
        cm = torch.stack([r.completion for r in rows]).float()
        packed = pack([unpadded(r.ids, r.attention, r.prompt_len) for r in rows], rows[0].completion.shape[0], "cpu")
        lp, _ = token_logps(llama, packed)
        torch.testing.assert_close(lp * cm, _reference_logps(plain, rows), atol=2e-5, rtol=0)
    assert not masks  # no [T, T] mask was built for a packed forward
    ids = torch.tensor([[0, 0, 5, 9, 11], [3, 4, 5, 9, 11]])
    am = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(llama.generate(input_ids=ids, attention_mask=am, **kw),
                       plain.generate(input_ids=ids, attention_mask=am, **kw))
    assert masks  # generate built sdpa's masks


def test_nothing_vocabulary_wide_is_kept_for_backward(model):
    rows = _rows()
    packed = pack([unpadded(r.ids, r.attention, r.prompt_len) for r in rows], rows[0].completion.shape[0], "cpu")
    V = model.config.vocab_size
    saved = []

    def keep(t):
        saved.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        lp, _ = token_logps(model, packed)
    assert saved and not [s for s in saved if s and s[-1] == V], [s for s in saved if s and s[-1] == V]
    lp.sum().backward()
    assert model.lm_head.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_checkpointing_recomputes_layers_with_identical_gradients(model):
    rows = _rows()
    cfg = _cfg("micro_batch=3")
    plain = _update_grads(model, rows, cfg)[0]
    ckpt_model = copy.deepcopy(model)
    prepare(ckpt_model, gradient_checkpointing=True)
    calls, mlp = [], ckpt_model.model.layers[0].mlp
    inner = mlp.forward  # counted in forward itself: module hooks do not fire during the recompute
    mlp.forward = lambda *a, **k: calls.append(1) or inner(*a, **k)
    ckpt = _update_grads(ckpt_model, rows, cfg)[0]
    assert len(calls) == 2 * 3  # 3 micro-batches: each layer ran again during its backward
    assert all(torch.equal(a, b) for a, b in zip(plain, ckpt)) and max(float(g.abs().max()) for g in plain) > 0


def test_micro_batches_follow_the_token_budget():
    rows = _rows(10, seed=1)
    sizes = [int(r.attention.sum()) for r in rows]
    cfg = _cfg("micro_batch=100", f"max_tokens_per_micro_batch={max(sizes) - 1}")
    mbs = micro_batches(rows, cfg, D)
    assert [r for mb in mbs for r in mb] == rows  # consecutive, none lost
    for mb in mbs:
        n = sum(int(r.attention.sum()) for r in mb)
        assert n <= cfg.max_tokens_per_micro_batch or len(mb) == 1  # only a row over the budget goes alone
    assert any(len(mb) > 1 for mb in mbs) and any(int(mb[0].attention.sum()) > cfg.max_tokens_per_micro_batch for mb in mbs)
    assert [len(mb) for mb in micro_batches(rows, _cfg("micro_batch=4"), D)] == [4, 4, 2]  # no budget: rows only


def test_memory_settings_are_checked():
    with pytest.raises(ValueError, match="attn_implementation: got 'eager'"):
        _cfg("attn_implementation=eager")
    with pytest.raises(ValueError, match="max_tokens_per_micro_batch must be >= 0"):
        _cfg("max_tokens_per_micro_batch=-1")
    assert _cfg("attn_implementation=flash_attention_2").attn_implementation == "flash_attention_2"


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean"])
def test_accumulation_is_exact_at_the_gradient(model, agg):
    rows = _rows()
    one = _update_grads(model, rows, _cfg(f"algo.aggregation={agg}", "micro_batch=8"))[0]
    for split in (["micro_batch=1"], ["micro_batch=8", "max_tokens_per_micro_batch=60"]):
        _assert_same_grads(one, _update_grads(model, rows, _cfg(f"algo.aggregation={agg}", *split))[0])


# ---- fidelity (issue 15, part 2, items 6-9) ------------------------------------------------------

def test_logps_are_those_of_the_sampling_temperature(model):
    rows = _rows()
    cfg = _cfg("sampling.temperature=2.0", "micro_batch=3")
    recompute_old_logps(model, rows, cfg, D)
    old = torch.stack([r.old_logp for r in rows])
    cm = torch.stack([r.completion for r in rows]).float()
    with torch.no_grad():
        at_t, raw = _reference_logps(model, rows, 2.0), _reference_logps(model, rows, 1.0)
    torch.testing.assert_close(old * cm, at_t, atol=2e-5, rtol=0)
    assert float(((old - raw).abs() * cm).max()) > 0.1  # T = 1 would be another distribution
    # the engine-vs-trainer metric compares like with like: vLLM returns raw log-probs, so the
    # trainer's raw ones (~0 apart here), not those at T (>= 0.1 apart)
    for r, engine in zip(rows, raw):
        r.rollout_logp = engine
    _, stats = _update_grads(model, rows, cfg)
    assert stats.rollout_logp_diff < 1e-5 and stats.grad_norm > 0


def test_calibration_sees_what_the_rollout_sends(model):
    from transformers import AutoTokenizer

    from training.data import Prompt
    from training.rollout import HFRollout

    tok = AutoTokenizer.from_pretrained(SKILLED)
    long = "Remember the code word first. " + "Filler sentence number %d. " * 200 % tuple(range(200)) + "What was the code word?"
    cfg = _cfg("max_prompt_tokens=64", "calib_prompts=2")
    prompts = [Prompt("a", long, ["x"], "f1"), Prompt("b", "Short question?", ["y"], "f1")]
    rollout = HFRollout(model, tok, cfg.sampling, cfg.max_prompt_tokens)
    batches = list(calibration_batches(tok, prompts, cfg, "cpu"))
    assert len(batches) == 2
    for b, p in zip(batches, prompts):
        assert b["input_ids"][0].tolist() == rollout._ids(p.prompt)  # template + middle truncation
        assert bool(b["attention_mask"].all())
    full = tok(tok.apply_chat_template([{"role": "user", "content": long}], tokenize=False, add_generation_prompt=True),
               add_special_tokens=False)["input_ids"]
    first = batches[0]["input_ids"][0].tolist()
    assert len(full) > 64 == len(first) and first[:32] == full[:32] and first[-32:] == full[-32:]  # lost its middle only


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_old_and_new_logps_share_one_precision(model, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    net, d = copy.deepcopy(model).to(device), parallel.Dist(device=torch.device(device))
    rows = _rows()
    seen = []

    def recording(logp, old_logp, *a, **kw):
        seen.append((logp.detach().clone(), old_logp.clone()))
        return L.POLICY_LOSSES["ppo_clip"](logp, old_logp, *a, **kw)

    cfg = _cfg("bf16=true", "micro_batch=3", "ppo_epochs=2", f"device={device}")
    recompute_old_logps(net, rows, cfg, d)
    bf16_old = [r.old_logp for r in rows]
    opt = _Capture(net.parameters(), lr=0.0)
    update(Learner(cfg, d, net, net, opt, LongActMask.calibrate(net, [], MaskConfig(strategy="none")), recording,
                   L.AGGREGATIONS[cfg.algo.aggregation]), rows, fresh=True)
    assert seen and all(torch.equal(new, old) for new, old in seen)  # ratio exactly 1 at the first update
    assert max(float(g.abs().max()) for g in opt.grads.values()) > 0
    recompute_old_logps(net, rows, _cfg("micro_batch=3", "ppo_epochs=2", f"device={device}"), d)
    # bf16 did take effect (on CPU too): float32 log-probs differ
    assert max(float((a - r.old_logp).abs().max()) for a, r in zip(bf16_old, rows)) > 1e-3


@pytest.mark.parametrize("loss,kwargs", [("kl_cov", "{kl_cov_ratio: 0.01}"),
                                         ("clip_cov", "{clip_ratio: 0.04, cov_lb: -100.0, cov_ub: 100.0}")])
def test_covariance_choices_span_the_mini_batch(model, loss, kwargs):
    rows = _rows()
    recompute_old_logps(model, rows, _cfg(), D)
    g = torch.Generator().manual_seed(3)
    for r in rows:  # a policy that has moved a little since sampling: |logp - old| has a gradient
        r.old_logp = r.old_logp + 0.05 * torch.randn(r.old_logp.shape, generator=g)
    n_tok = int(sum(r.completion.sum() for r in rows))
    share = {"kl_cov": 0.01, "clip_cov": 0.04}[loss]
    runs = {}
    for mb in (8, 1):
        torch.manual_seed(0)  # the choice's seed comes from the torch RNG
        cfg = _cfg(f"algo.policy_loss={loss}", f"algo.loss_kwargs={kwargs}", f"micro_batch={mb}")
        runs[mb] = _update_grads(model, rows, cfg, loss)
    # one choice over all N tokens: max(1, int(share * N)) of them, not at least one per micro-batch
    for _, stats in runs.values():
        assert stats.clip_frac == pytest.approx(max(1, int(share * n_tok)) / n_tok)
    _assert_same_grads(runs[8][0], runs[1][0])
