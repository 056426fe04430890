"""Every advantage, policy loss, aggregation and KL function against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from training import losses as L


def test_grpo_and_drgrpo_advantages():
    r = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])  # two groups of 3
    # group 1: mean 2, unbiased std 1; group 2: all equal -> 0 (std 0, eps keeps it finite)
    torch.testing.assert_close(L.ADVANTAGES["grpo"](r, 3, eps=0.0)[:3], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(L.ADVANTAGES["grpo"](r, 3)[3:], torch.zeros(3))
    torch.testing.assert_close(L.ADVANTAGES["drgrpo"](torch.tensor([1.0, 0.0, 0.0, 0.0]), 2),
                               torch.tensor([0.5, -0.5, 0.0, 0.0]))


def test_ppo_clip_with_separate_epsilons():
    logp = torch.log(torch.tensor([[1.5, 1.25], [0.5, 1.0]]))
    old = torch.zeros(2, 2)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2)
    loss, stats = L.POLICY_LOSSES["ppo_clip"](logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    # ratio 1.5, A=1: clipped to 1.28 -> -1.28; ratio 1.25, A=1: inside -> -1.25
    # ratio 0.5, A=-1: max(0.5, 0.8) = 0.8 (clipped); ratio 1, A=-1: -(-1)*1 = 1
    torch.testing.assert_close(loss, torch.tensor([[-1.28, -1.25], [0.8, 1.0]]))
    assert stats["clip_frac"].item() == pytest.approx(0.5)


def test_clip_cov_cuts_exactly_the_requested_share():
    logp = torch.tensor([[0.0, 0.0], [-2.0, -2.0]], requires_grad=True)
    adv = torch.tensor([2.0, -2.0])  # centred cov = 2 for every token: inside (1, 5)
    mask = torch.ones(2, 2)
    loss, stats = L.POLICY_LOSSES["clip_cov"](logp, logp.detach(), adv, mask, clip_ratio=0.5,
                                              generator=torch.Generator().manual_seed(0))
    cut = loss == 0
    assert int(cut.sum()) == 2 and stats["clip_frac"].item() == 0.5
    torch.testing.assert_close(loss[~cut], (-adv.unsqueeze(1).expand(2, 2))[~cut])
    loss.sum().backward()
    assert torch.all(logp.grad[cut] == 0) and torch.all(logp.grad[~cut] != 0)
    # covariance outside the band: nothing is cut
    loss2, _ = L.POLICY_LOSSES["clip_cov"](logp.detach(), logp.detach(), adv, mask, clip_ratio=0.5, cov_lb=3.0)
    assert int((loss2 == 0).sum()) == 0


def test_kl_cov_penalises_top_covariance_token():
    logp = torch.tensor([[0.1, -0.5], [0.3, -0.1]])
    adv = torch.tensor([1.0, -1.0])
    # mean A = 0, mean logp = -0.05 -> cov = [0.15, -0.45, -0.35, 0.05]; top 25% = token (0, 0)
    loss, stats = L.POLICY_LOSSES["kl_cov"](logp, torch.zeros(2, 2), adv, torch.ones(2, 2),
                                            kl_cov_ratio=0.25, kl_coef=1.0)
    expect = torch.tensor([[-math.exp(0.1) + 0.1, -math.exp(-0.5)], [math.exp(0.3), math.exp(-0.1)]])
    torch.testing.assert_close(loss, expect)
    assert stats["clip_frac"].item() == 0.25


def test_ppo_clip_dual_clip_and_log_ratio_clamp():
    # verl's defaults: A < 0 and ratio > c = 3 -> loss capped at -A * 3, no gradient
    logp = torch.log(torch.tensor([[5.0, 2.0], [5.0, 0.5]])).requires_grad_(True)
    adv = torch.tensor([-1.0, 1.0])
    loss, stats = L.POLICY_LOSSES["ppo_clip"](logp, torch.zeros(2, 2), adv, torch.ones(2, 2))
    # (A=-1, r=5): max(5, 0.8) = 5, capped at 3; (A=-1, r=2): 2 < 3 stays; (A=1, r=5): -1.2; (A=1, r=0.5): -0.5
    torch.testing.assert_close(loss.detach(), torch.tensor([[3.0, 2.0], [-1.2, -0.5]]))
    assert stats["clip_frac_lower"].item() == pytest.approx(0.25)
    loss.sum().backward()
    assert logp.grad[0, 0] == 0 and logp.grad[0, 1] != 0
    off, _ = L.POLICY_LOSSES["ppo_clip"](logp.detach(), torch.zeros(2, 2), adv, torch.ones(2, 2), dual_clip_c=0)
    assert off[0, 0].item() == pytest.approx(5.0)  # dual_clip_c=0: plain PPO
    # a far off-policy token: log-ratio 50 is clamped to 20 before exp (A < 0 would overflow the cap's input)
    far, _ = L.POLICY_LOSSES["ppo_clip"](torch.tensor([[50.0]]), torch.zeros(1, 1), torch.tensor([-1.0]),
                                         torch.ones(1, 1), dual_clip_c=0)
    assert far.item() == pytest.approx(math.exp(20.0), rel=1e-6)
    raw, _ = L.POLICY_LOSSES["ppo_clip"](torch.tensor([[100.0]]), torch.zeros(1, 1), torch.tensor([-1.0]),
                                         torch.ones(1, 1), dual_clip_c=0, log_ratio_clamp=0)
    assert math.isinf(raw.item())


def test_aggregations():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert L.AGGREGATIONS["seq_mean_token_mean"](loss, mask).item() == pytest.approx((1.5 + 4.0) / 2)
    assert L.AGGREGATIONS["token_mean"](loss, mask).item() == pytest.approx(7.0 / 3)
    # token sums 3 and 4: verl seq-mean-token-sum = 3.5; -norm = 7 / L; Dr. GRPO = 7 / (B * L)
    assert L.AGGREGATIONS["seq_mean_token_sum"](loss, mask).item() == pytest.approx(3.5)
    assert L.AGGREGATIONS["seq_mean_token_sum_norm"](loss, mask, max_len=10).item() == pytest.approx(0.7)
    assert L.AGGREGATIONS["seq_mean_token_sum_norm"](loss, mask).item() == pytest.approx(7.0 / 3)  # L = padded width
    assert L.AGGREGATIONS["dr_grpo"](loss, mask, num_seqs=4, max_len=10).item() == pytest.approx(7.0 / 40)


def _trl_dr_grpo(per_token_loss, mask, max_completion_length, accumulation_steps):
    """TRL GRPOTrainer `loss_type="dr_grpo"` on one micro-batch, restated (huggingface/trl
    trl/trainer/grpo_trainer.py): token sum / (rows * max_completion_length), then divided by the
    gradient-accumulation steps."""
    return (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length) / accumulation_steps


def test_dr_grpo_gradient_matches_trl():
    """Dr. GRPO = its advantage + its constant normaliser; with our default aggregation the gradient
    points elsewhere (length-weighted differently), with `dr_grpo` it is TRL's."""
    g = torch.Generator().manual_seed(0)
    B, T, L_max = 8, 12, 16  # L_max: the generation budget, larger than the longest completion here
    feats = torch.randn(B, T, 4, generator=g)
    lengths = torch.tensor([1, 12, 3, 2, 11, 4, 12, 1])
    mask = (torch.arange(T) < lengths.unsqueeze(1)).float()
    adv = L.ADVANTAGES["drgrpo"](torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]), 4)
    w0 = torch.randn(4, generator=g)

    def grad(aggregate, chunks):
        w = w0.clone().requires_grad_(True)
        for idx in chunks:
            logp = torch.nn.functional.logsigmoid(feats[idx] @ w)  # [b, T]
            loss, _ = L.POLICY_LOSSES["ppo_clip"](logp, logp.detach(), adv[idx], mask[idx])
            aggregate(loss, mask[idx]).backward()
        return w.grad

    halves = [torch.arange(4), torch.arange(4, 8)]  # 2 micro-batches of 4 (TRL: gradient accumulation 2)
    trl = grad(lambda l, m: _trl_dr_grpo(l, m, L_max, 2), halves)
    ours = grad(lambda l, m: L.AGGREGATIONS["dr_grpo"](l, m, num_seqs=B, max_len=L_max), halves)
    torch.testing.assert_close(ours, trl, rtol=1e-6, atol=1e-8)
    default = grad(lambda l, m: L.AGGREGATIONS["seq_mean_token_mean"](l, m, num_seqs=B), halves)
    cos = torch.nn.functional.cosine_similarity(default, trl, dim=0).item()
    assert cos < 0.95, cos  # the advantage alone is not Dr. GRPO


def test_k3_kl_clamped_as_verl():
    # ref far above the policy: r = 30 is clamped to 20, then the estimate to 10
    assert L.k3_kl(torch.tensor([-30.0]), torch.tensor([0.0])).item() == 10.0
    assert L.k3_kl(torch.tensor([-3.0]), torch.tensor([0.0]), clamp=0).item() == pytest.approx(math.exp(3) - 4)
    assert math.isinf(L.k3_kl(torch.tensor([-100.0]), torch.tensor([0.0]), clamp=0, log_ratio_clamp=0).item())


def test_k3_kl_and_overlong_penalty():
    kl = L.k3_kl(torch.zeros(1), torch.log(torch.tensor([2.0])))
    assert kl.item() == pytest.approx(2.0 - math.log(2.0) - 1.0)
    assert L.k3_kl(torch.tensor([0.3]), torch.tensor([0.3])).item() == 0.0
    pen = L.overlong_penalty(torch.tensor([5, 6, 8, 10, 11]), max_len=10, cache_len=4)
    torch.testing.assert_close(pen, torch.tensor([0.0, 0.0, -0.5, -1.0, -1.0]))


@pytest.mark.parametrize("agg,key", [("token_mean", "num_tokens"), ("seq_mean_token_mean", "num_seqs"),
                                     ("seq_mean_token_sum", "num_seqs"), ("dr_grpo", "num_seqs"),
                                     ("seq_mean_token_sum_norm", "max_len")])
def test_batch8_accum1_equals_batch1_accum8(agg, key):
    """DAPO token-level loss: normalising by the step's token total makes accumulation exact; the
    same for every aggregation given the step's totals (dr_grpo: sequences and the budget)."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(8, 6, 4, generator=g)  # [B, T, F]
    lengths = torch.tensor([1, 6, 3, 2, 5, 4, 6, 1])
    mask = (torch.arange(6) < lengths.unsqueeze(1)).float()  # [B, T]
    old = torch.randn(8, 6, generator=g) * 0.1
    adv = torch.randn(8, generator=g)
    w0 = torch.randn(4, generator=g)
    norm = {"num_tokens": mask.sum(), "num_seqs": 8.0, "max_len": 6.0}[key]

    def grad(chunks):
        w = w0.clone().requires_grad_(True)
        for idx in chunks:
            logp = torch.nn.functional.logsigmoid(feats[idx] @ w)  # [b, T]
            loss, _ = L.POLICY_LOSSES["ppo_clip"](logp, old[idx], adv[idx], mask[idx], eps_high=0.28)
            L.AGGREGATIONS[agg](loss, mask[idx], **{key: norm, "max_len": 6.0}).backward()
        return w.grad

    full = grad([torch.arange(8)])
    accum = grad([torch.tensor([i]) for i in range(8)])
    torch.testing.assert_close(full, accum, rtol=1e-6, atol=1e-7)
    # the per-micro-batch mean (no global normaliser) is NOT equivalent, which is the point
    w = w0.clone().requires_grad_(True)
    for i in range(8):
        logp = torch.nn.functional.logsigmoid(feats[[i]] @ w)
        loss, _ = L.POLICY_LOSSES["ppo_clip"](logp, old[[i]], adv[[i]], mask[[i]], eps_high=0.28)
        (L.AGGREGATIONS["token_mean"](loss, mask[[i]]) / 8).backward()
    if agg == "token_mean":
        assert not torch.allclose(w.grad, full)


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="algo.policy_loss: unknown 'ppo'.*clip_cov"):
        L.lookup(L.POLICY_LOSSES, "ppo", "algo.policy_loss")
