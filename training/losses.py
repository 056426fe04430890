"""Advantage estimators, policy losses, aggregations and KL: small named functions in registries.

Token mask convention (all functions): `mask` is [B, T] with 1 = completion token that counts,
0 = prompt/pad (ignored). Per-token tensors are [B, T]; per-sequence rewards are [B] with the
G completions of one prompt adjacent (B = prompts * G).

Pick a variant by name: ADVANTAGES["grpo"], POLICY_LOSSES["clip_cov"], AGGREGATIONS["token_mean"].
"""

from __future__ import annotations

from typing import Callable

import torch

ADVANTAGES: dict[str, Callable] = {}
POLICY_LOSSES: dict[str, Callable] = {}
AGGREGATIONS: dict[str, Callable] = {}


def _register(table: dict[str, Callable], name: str):
    def wrap(fn):
        table[name] = fn
        return fn
    return wrap


def lookup(table: dict[str, Callable], name: str, field: str) -> Callable:
    if name not in table:
        raise ValueError(f"{field}: unknown {name!r}, expected one of {', '.join(sorted(table))}")
    return table[name]


# ---- advantages ------------------------------------------------------------------------------

@_register(ADVANTAGES, "grpo")
def grpo_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO group-normalised advantage (r - mean_g) / (std_g + eps), Shao et al. 2024
    (DeepSeekMath, arXiv:2402.03300) eq. for outcome supervision. std is the unbiased sample std,
    as in TRL's GRPOTrainer. rewards [B] -> advantages [B]."""
    g = rewards.view(-1, group_size)  # [prompts, G]
    adv = (g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + eps)
    return adv.view(-1)


@_register(ADVANTAGES, "drgrpo")
def drgrpo_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Dr. GRPO advantage r - mean_g without the std division, Liu et al. 2025 ("Understanding
    R1-Zero-Like Training", arXiv:2503.20783): removes the question-difficulty bias."""
    g = rewards.view(-1, group_size)
    return (g - g.mean(1, keepdim=True)).view(-1)


# ---- policy losses: each returns (per-token loss [B, T], stats dict) -----------------------

def _ratio_terms(logp, old_logp, adv, eps_low, eps_high):
    ratio = torch.exp(logp - old_logp)  # [B, T]
    a = adv.unsqueeze(1) if adv.dim() == 1 else adv  # [B, 1] or [B, T]
    unclipped = -a * ratio
    clipped = -a * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return ratio, a, unclipped, clipped


def _masked_mean(x, mask):
    return (x * mask).sum() / mask.sum().clamp(min=1)


@_register(POLICY_LOSSES, "ppo_clip")
def ppo_clip_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2, **_):
    """PPO clipped surrogate, Schulman et al. 2017 (arXiv:1707.06347), with separate lower and
    upper epsilon ("clip-higher", DAPO, Yu et al. 2025, arXiv:2503.14476; eps_high=0.28 there)."""
    _, _, unclipped, clipped = _ratio_terms(logp, old_logp, adv, eps_low, eps_high)
    loss = torch.maximum(unclipped, clipped)
    clip_frac = _masked_mean((clipped > unclipped).float(), mask)
    return loss, {"clip_frac": clip_frac.detach()}


@_register(POLICY_LOSSES, "clip_cov")
def clip_cov_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2, clip_ratio=2e-4,
                  cov_lb=1.0, cov_ub=5.0, generator: torch.Generator | None = None, **_):
    """Clip-Cov, Cui et al. 2025 ("The Entropy Mechanism of RL for Reasoning LMs",
    arXiv:2505.22617): among tokens not already clipped whose centred covariance
    (A - mean A)(logp - mean logp) lies in (cov_lb, cov_ub), a random clip_ratio share of all
    valid tokens has its gradient cut (loss multiplied by 0)."""
    _, a, unclipped, clipped = _ratio_terms(logp, old_logp, adv, eps_low, eps_high)
    valid = mask > 0
    a_full = a.expand_as(logp)
    lp = logp.detach()
    cov = (a_full - a_full[valid].mean()) * (lp - lp[valid].mean())  # [B, T]
    candidates = valid & ~(clipped > unclipped) & (cov > cov_lb) & (cov < cov_ub)
    idx = candidates.flatten().nonzero().squeeze(1)
    n_cut = min(max(int(clip_ratio * int(valid.sum())), 1), idx.numel())
    keep = torch.ones(logp.numel(), dtype=logp.dtype, device=logp.device)
    if n_cut > 0:
        pick = torch.randperm(idx.numel(), generator=generator)[:n_cut]
        keep[idx[pick]] = 0.0
    keep = keep.view_as(logp)
    loss = torch.maximum(unclipped, clipped) * keep
    return loss, {"clip_frac": _masked_mean((keep == 0).float(), mask).detach()}


@_register(POLICY_LOSSES, "kl_cov")
def kl_cov_loss(logp, old_logp, adv, mask, kl_cov_ratio=2e-4, kl_coef=1.0, **_):
    """KL-Cov, Cui et al. 2025 (arXiv:2505.22617): no ratio clipping; the top kl_cov_ratio share
    of valid tokens by centred covariance get an extra kl_coef * |logp - old_logp| penalty."""
    ratio = torch.exp(logp - old_logp)
    a = (adv.unsqueeze(1) if adv.dim() == 1 else adv).expand_as(logp)
    loss = -a * ratio
    valid = mask > 0
    idx = valid.flatten().nonzero().squeeze(1)
    lp = logp.detach().flatten()[idx]
    av = a.detach().flatten()[idx]
    cov = (av - av.mean()) * (lp - lp.mean())
    k = max(1, int(idx.numel() * kl_cov_ratio)) if idx.numel() else 0
    sel = torch.zeros(logp.numel(), dtype=torch.bool, device=logp.device)
    if k:
        sel[idx[torch.topk(cov, k).indices]] = True
    sel = sel.view_as(logp)
    loss = torch.where(sel, loss + kl_coef * (logp - old_logp).abs(), loss)
    return loss, {"clip_frac": _masked_mean(sel.float(), mask).detach()}


# ---- aggregations -----------------------------------------------------------------------------

@_register(AGGREGATIONS, "seq_mean_token_mean")
def seq_mean_token_mean(loss, mask, num_seqs: float | None = None, **_):
    """Mean over sequences of each sequence's token-mean (GRPO as in Shao et al. 2024).
    num_seqs: the total over all micro-batches of one optimizer step, for exact accumulation."""
    per_seq = (loss * mask).sum(1) / mask.sum(1).clamp(min=1)  # [B]
    return per_seq.sum() / (num_seqs if num_seqs is not None else per_seq.numel())


@_register(AGGREGATIONS, "token_mean")
def token_mean(loss, mask, num_tokens: float | None = None, **_):
    """Global token-mean (DAPO token-level loss, Yu et al. 2025): every completion token weighs
    the same, so long answers are not down-weighted. num_tokens: the completion-token total of the
    whole optimizer step, so batch 8 x accum 1 equals batch 1 x accum 8."""
    return (loss * mask).sum() / (num_tokens if num_tokens is not None else mask.sum().clamp(min=1))


# ---- KL and reward shaping --------------------------------------------------------------------

def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator exp(r) - r - 1 with r = ref_logp - logp (Schulman 2020, "Approximating
    KL divergence"; used by GRPO, Shao et al. 2024 eq. 4). Non-negative, unbiased for KL(pi||ref)."""
    r = ref_logp - logp
    return torch.exp(r) - r - 1.0


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13): 0 up to max_len - cache_len, then a
    linear ramp to -1 at max_len, -1 beyond. Added to the task reward."""
    lengths = lengths.float()
    start = max_len - cache_len
    ramp = (start - lengths) / cache_len
    return torch.where(lengths <= start, torch.zeros_like(lengths),
                       torch.where(lengths <= max_len, ramp, -torch.ones_like(lengths)))
