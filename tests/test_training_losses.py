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


def test_aggregations():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert L.AGGREGATIONS["seq_mean_token_mean"](loss, mask).item() == pytest.approx((1.5 + 4.0) / 2)
    assert L.AGGREGATIONS["token_mean"](loss, mask).item() == pytest.approx(7.0 / 3)


def test_k3_kl_and_overlong_penalty():
    kl = L.k3_kl(torch.zeros(1), torch.log(torch.tensor([2.0])))
    assert kl.item() == pytest.approx(2.0 - math.log(2.0) - 1.0)
    assert L.k3_kl(torch.tensor([0.3]), torch.tensor([0.3])).item() == 0.0
    pen = L.overlong_penalty(torch.tensor([5, 6, 8, 10, 11]), max_len=10, cache_len=4)
    torch.testing.assert_close(pen, torch.tensor([0.0, 0.0, -0.5, -1.0, -1.0]))


@pytest.mark.parametrize("agg,key", [("token_mean", "num_tokens"), ("seq_mean_token_mean", "num_seqs")])
def test_batch8_accum1_equals_batch1_accum8(agg, key):
    """DAPO token-level loss: normalising by the step's token total makes accumulation exact."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(8, 6, 4, generator=g)  # [B, T, F]
    lengths = torch.tensor([1, 6, 3, 2, 5, 4, 6, 1])
    mask = (torch.arange(6) < lengths.unsqueeze(1)).float()  # [B, T]
    old = torch.randn(8, 6, generator=g) * 0.1
    adv = torch.randn(8, generator=g)
    w0 = torch.randn(4, generator=g)
    norm = {"num_tokens": mask.sum(), "num_seqs": 8.0}[key]

    def grad(chunks):
        w = w0.clone().requires_grad_(True)
        for idx in chunks:
            logp = torch.nn.functional.logsigmoid(feats[idx] @ w)  # [b, T]
            loss, _ = L.POLICY_LOSSES["ppo_clip"](logp, old[idx], adv[idx], mask[idx], eps_high=0.28)
            L.AGGREGATIONS[agg](loss, mask[idx], **{key: norm}).backward()
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
