"""Advantage estimators, policy losses, aggregations and KL: small named functions in registries.

Token mask convention (all functions): `mask` is [B, T] with 1 = completion token that counts,
0 = prompt/pad (ignored). Per-token tensors are [B, T]; per-sequence rewards are [B] with the
G completions of one prompt adjacent (B = prompts * G).

Pick a variant by name: ADVANTAGES["grpo"], POLICY_LOSSES["clip_cov"], AGGREGATIONS["token_mean"].
The trainer passes every policy loss the same keywords (and every aggregation both normalisers),
so each takes `**_` for those it does not use; `algo.loss_kwargs` is checked against the chosen
loss's own parameters (`check_loss_kwargs`) when the config loads, so a misspelled key is refused
rather than absorbed.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Callable

import torch

from tasks.errors import ConfigError

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
        raise ConfigError(f"{field}: unknown {name!r}, expected one of {', '.join(sorted(table))}")
    return table[name]


# Policy-loss keywords the trainer passes from other settings, or computes: not for algo.loss_kwargs.
SET_BY_TRAINER = {"eps_low": "algo.eps_low", "eps_high": "algo.eps_high", "dual_clip_c": "algo.dual_clip_c",
                  "log_ratio_clamp": "algo.log_ratio_clamp", "pick": None, "generator": None}


def loss_kwargs_accepted(policy_loss: str) -> dict:
    """The keywords `algo.loss_kwargs` may set for a policy loss, with their defaults."""
    params = inspect.signature(POLICY_LOSSES[policy_loss]).parameters.values()
    return {p.name: p.default for p in params
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD and p.name not in SET_BY_TRAINER}


def check_loss_kwargs(policy_loss: str, kwargs: dict, where: str) -> dict:
    """`kwargs` for `policy_loss`, numbers given as text ("1e-3") read as numbers; an unknown key,
    one another setting owns, or a non-number where the loss takes a number is a ConfigError that
    names it and lists what the loss accepts."""
    accepted = loss_kwargs_accepted(policy_loss)
    listed = ", ".join(accepted) or "none"
    out = {}
    for key, value in kwargs.items():
        if key in SET_BY_TRAINER:
            owner = SET_BY_TRAINER[key]
            raise ConfigError(f"{where}: {key!r} is " + (f"set by {owner}, not algo.loss_kwargs" if owner else
                              "chosen by the trainer") + f"; {policy_loss} accepts: {listed}")
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r} for algo.policy_loss={policy_loss}{hint}; it accepts: {listed}")
        default = accepted[key]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, str):
                try:
                    value = float(value)  # YAML 1.1 reads "1e-3" as a string
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {key} expects a number, got {value!r}")
        out[key] = value
    return out


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

def _ratio_terms(logp, old_logp, adv, eps_low, eps_high, log_ratio_clamp: float = 0.0):
    log_ratio = logp - old_logp  # [B, T]
    if log_ratio_clamp:  # verl: exp of a far off-policy token would overflow (its gradient is then 0)
        log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)  # [B, T]
    a = adv.unsqueeze(1) if adv.dim() == 1 else adv  # [B, 1] or [B, T]
    unclipped = -a * ratio
    clipped = -a * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return ratio, a, unclipped, clipped


def _masked_mean(x, mask):
    return (x * mask).sum() / mask.sum().clamp(min=1)


@_register(POLICY_LOSSES, "ppo_clip")
def ppo_clip_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2, dual_clip_c=3.0, log_ratio_clamp=20.0, **_):
    """PPO clipped surrogate, Schulman et al. 2017 (arXiv:1707.06347), with separate lower and
    upper epsilon ("clip-higher", DAPO, Yu et al. 2025, arXiv:2503.14476; eps_high=0.28 there).

    verl's defaults on top (`compute_policy_loss_vanilla`, volcengine/verl
    verl/trainer/ppo/core_algos.py): dual-clip (Ye et al. 2020, arXiv:1912.09729) caps the loss of a
    token with A < 0 at -A * dual_clip_c, so a ratio beyond c no longer pushes its probability
    down (0 = off; else c > 1); log(ratio) is clamped to +-log_ratio_clamp before exp (0 = off)."""
    _, a, unclipped, clipped = _ratio_terms(logp, old_logp, adv, eps_low, eps_high, log_ratio_clamp)
    loss = torch.maximum(unclipped, clipped)  # [B, T]
    stats = {"clip_frac": _masked_mean((clipped > unclipped).float(), mask).detach()}
    if dual_clip_c:
        cap = -a * dual_clip_c  # [B, 1] or [B, T]; > 0 where A < 0
        lower = (a < 0) & (loss > cap)  # A < 0 and ratio > c: the third clip
        loss = torch.where(a < 0, torch.minimum(loss, cap), loss)
        stats["clip_frac_lower"] = _masked_mean(lower.expand_as(loss).float(), mask).detach()
    return loss, stats


@_register(POLICY_LOSSES, "clip_cov")
def clip_cov_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2, clip_ratio=2e-4,
                  cov_lb=1.0, cov_ub=5.0, generator: torch.Generator | None = None, pick=None, **_):
    """Clip-Cov, Cui et al. 2025 ("The Entropy Mechanism of RL for Reasoning LMs",
    arXiv:2505.22617): among tokens not already clipped whose centred covariance
    (A - mean A)(logp - mean logp) lies in (cov_lb, cov_ub), a random clip_ratio share of all
    valid tokens has its gradient cut (loss multiplied by 0). `pick` [B, T] bool: the cut tokens,
    chosen over the whole batch (BATCH_PICKS); None = choose over this call's tokens."""
    _, _, unclipped, clipped = _ratio_terms(logp, old_logp, adv, eps_low, eps_high)
    if pick is None:
        pick = _pick_here("clip_cov", logp, old_logp, adv, mask, generator, eps_low=eps_low, eps_high=eps_high,
                          clip_ratio=clip_ratio, cov_lb=cov_lb, cov_ub=cov_ub)
    keep = (~pick).to(logp.dtype)
    loss = torch.maximum(unclipped, clipped) * keep
    return loss, {"clip_frac": _masked_mean(pick.float(), mask).detach()}


@_register(POLICY_LOSSES, "kl_cov")
def kl_cov_loss(logp, old_logp, adv, mask, kl_cov_ratio=2e-4, kl_coef=1.0, pick=None, **_):
    """KL-Cov, Cui et al. 2025 (arXiv:2505.22617): no ratio clipping; the top kl_cov_ratio share
    of valid tokens by centred covariance get an extra kl_coef * |logp - old_logp| penalty.
    `pick` [B, T] bool: the penalised tokens, chosen over the whole batch (BATCH_PICKS); None =
    choose over this call's tokens."""
    ratio = torch.exp(logp - old_logp)
    a = (adv.unsqueeze(1) if adv.dim() == 1 else adv).expand_as(logp)
    loss = -a * ratio
    if pick is None:
        pick = _pick_here("kl_cov", logp, old_logp, adv, mask, None, kl_cov_ratio=kl_cov_ratio)
    loss = torch.where(pick, loss + kl_coef * (logp - old_logp).abs(), loss)
    return loss, {"clip_frac": _masked_mean(pick.float(), mask).detach()}


# ---- Clip-Cov / KL-Cov token choice over a whole batch -----------------------------------------
# Cui et al. define the covariance's means and the chosen share over the training batch. A trainer
# that accumulates micro-batches (over ranks too) gathers every valid token's features (`features`:
# [B, T, F] per call, kept where mask > 0), chooses on the gathered [N, F] (`pick`: bool [N]) and
# hands each micro-batch its part as the losses' `pick` argument.

def _centred_cov(a: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    return (a - a.mean()) * (lp - lp.mean())  # [N]


def _clip_cov_features(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.2, **_):
    """(A, logp, already clipped) per token: [B, T, 3]."""
    _, a, unclipped, clipped = _ratio_terms(logp.detach(), old_logp, adv, eps_low, eps_high)
    return torch.stack([a.expand_as(logp), logp.detach(), (clipped > unclipped).to(logp.dtype)], -1)


def _clip_cov_pick(feats, generator: torch.Generator | None = None, clip_ratio=2e-4, cov_lb=1.0, cov_ub=5.0, **_):
    """A random clip_ratio share of all N tokens (at least one), drawn among the unclipped tokens
    whose covariance lies in (cov_lb, cov_ub)."""
    cov = _centred_cov(feats[:, 0], feats[:, 1])
    candidates = ((feats[:, 2] == 0) & (cov > cov_lb) & (cov < cov_ub)).nonzero().squeeze(1)
    n_cut = min(max(int(clip_ratio * feats.shape[0]), 1), candidates.numel())
    pick = torch.zeros(feats.shape[0], dtype=torch.bool, device=feats.device)
    order = torch.randperm(candidates.numel(), generator=generator)
    pick[candidates[order[:n_cut].to(candidates.device)]] = True
    return pick


def _kl_cov_features(logp, old_logp, adv, mask, **_):
    """(A, logp) per token: [B, T, 2]."""
    a = adv.unsqueeze(1) if adv.dim() == 1 else adv
    return torch.stack([a.expand_as(logp), logp.detach()], -1)


def _kl_cov_pick(feats, generator=None, kl_cov_ratio=2e-4, **_):
    """The kl_cov_ratio share of the N tokens (at least one) with the largest covariance."""
    pick = torch.zeros(feats.shape[0], dtype=torch.bool, device=feats.device)
    if feats.shape[0]:
        k = max(1, int(feats.shape[0] * kl_cov_ratio))
        pick[torch.topk(_centred_cov(feats[:, 0], feats[:, 1]), k).indices] = True
    return pick


BATCH_PICKS: dict[str, tuple[Callable, Callable]] = {
    "clip_cov": (_clip_cov_features, _clip_cov_pick),
    "kl_cov": (_kl_cov_features, _kl_cov_pick),
}


def _pick_here(loss: str, logp, old_logp, adv, mask, generator, **kwargs) -> torch.Tensor:
    """The token choice over one call's own tokens (the loss used alone): [B, T] bool."""
    features, pick = BATCH_PICKS[loss]
    valid = mask > 0
    out = torch.zeros_like(valid)
    out[valid] = pick(features(logp, old_logp, adv, mask, **kwargs)[valid], generator, **kwargs)
    return out


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


@_register(AGGREGATIONS, "seq_mean_token_sum")
def seq_mean_token_sum(loss, mask, num_seqs: float | None = None, **_):
    """Mean over sequences of each sequence's token sum (verl `agg_loss` "seq-mean-token-sum",
    volcengine/verl verl/trainer/ppo/core_algos.py): a sequence weighs in proportion to its length.
    num_seqs: the sequence total of the whole optimizer step (all micro-batches and ranks)."""
    per_seq = (loss * mask).sum(1)  # [B]
    return per_seq.sum() / (num_seqs if num_seqs is not None else per_seq.numel())


@_register(AGGREGATIONS, "seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(loss, mask, max_len: float | None = None, **_):
    """Token sum over the whole optimizer step divided by one constant length (verl `agg_loss`
    "seq-mean-token-sum-norm", whose `loss_scale_factor` defaults to the padded response length,
    the generation budget there). max_len: that constant; the loop passes `sampling.max_new_tokens`.
    verl applies the formula per micro-batch and then divides by its micro-batch count (its
    legacy worker) or averages over data-parallel ranks, so its scale depends on the layout;
    here it is the formula over the whole step, the same whatever the micro-batches and ranks."""
    return (loss * mask).sum() / (max_len if max_len is not None else mask.shape[-1])


@_register(AGGREGATIONS, "dr_grpo")
def dr_grpo(loss, mask, num_seqs: float | None = None, max_len: float | None = None, **_):
    """Dr. GRPO's constant normaliser, Liu et al. 2025 (arXiv:2503.20783): token sum / (B * L_max)
    with L_max the generation budget, as TRL's `loss_type="dr_grpo"` (`max_completion_length`,
    huggingface/trl trl/trainer/grpo_trainer.py, which divides each micro-batch's value by the
    accumulation steps, i.e. B = the step's sequences). No length bias: each token's gradient
    weight is the same constant. num_seqs / max_len: the step's sequence total and the budget."""
    b = num_seqs if num_seqs is not None else mask.shape[0]
    return (loss * mask).sum() / (b * (max_len if max_len is not None else mask.shape[-1]))


# ---- KL and reward shaping --------------------------------------------------------------------

def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor, clamp: float = 10.0, log_ratio_clamp: float = 20.0) -> torch.Tensor:
    """Per-token k3 estimator exp(r) - r - 1 with r = ref_logp - logp (Schulman 2020, "Approximating
    KL divergence"; used by GRPO, Shao et al. 2024 eq. 4). Non-negative, unbiased for KL(pi||ref).
    As verl's "low_var_kl" (`kl_penalty_forward`): r clamped to +-log_ratio_clamp before exp and
    the estimate to at most `clamp` (verl: [-10, 10]); 0 turns either off."""
    r = ref_logp - logp
    if log_ratio_clamp:
        r = r.clamp(-log_ratio_clamp, log_ratio_clamp)
    kl = torch.exp(r) - r - 1.0
    return kl.clamp(-clamp, clamp) if clamp else kl


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13): 0 up to max_len - cache_len, then a
    linear ramp to -1 at max_len, -1 beyond. Added to the task reward."""
    lengths = lengths.float()
    start = max_len - cache_len
    ramp = (start - lengths) / cache_len
    return torch.where(lengths <= start, torch.zeros_like(lengths),
                       torch.where(lengths <= max_len, ramp, -torch.ones_like(lengths)))
