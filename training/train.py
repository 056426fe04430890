"""The LongAct RL loop: rollout -> reward -> advantage -> loss -> mask -> clip -> step -> log -> checkpoint.

    longact train --config training/configs/tiny-cpu.yaml [--dry-run] [key=value ...]
    torchrun --nproc_per_node 2 --no-python longact train --config ... parallel=ddp   # or parallel=fsdp

Config: training/config.py (dataclass defaults < YAML preset < `key=value` overrides); the
resolved config is written to <out_dir>/config.yaml.
Output: <out_dir>/step-N/ = HF safetensors (vLLM serves it as is) + mask + trainer_state.pt
(training/checkpoint.py); <out_dir>/metrics.jsonl (+ TensorBoard scalars when tensorboard is installed).

`train` = `setup` (models, mask, optimizer, rollout engine, resume: a `Run` and a `Learner`), then
per step `train_step` (stages 1-8 below), the metrics line and the checkpoint. `update`
(training/update.py) is one optimizer update of a `Learner` over micro-batches (`MicroBatch`:
rows packed without padding); `collect_groups` hands it `Group`s, `build_rows` their `Row`s.

One step: `prompts_per_step` prompts x `group_size` samples are rolled out with the current policy
(each prompt's group seeded by its data index, so rollouts do not depend on the number of processes
or on resuming), scored, turned into group advantages, and used for `ppo_epochs` passes over
`mini_batches` optimizer updates (mu = ppo_epochs x mini_batches, GRPO's notation).

Departures from the papers (on purpose, all configurable or documented):
- with mu = 1 (the default) old log-probs equal the current ones detached, so the PPO ratio is 1 and
  clipping acts only from the second update on; with mu > 1 old log-probs are recomputed by the
  trainer once per step (as verl does), not taken from the rollout engine;
- the LongAct mask is static by default (refresh via mask.refresh_every); saliency is the
  per-channel mean |q|,|k| after q_norm/k_norm before RoPE over the first `calib_prompts` prompts;
- the KL term (kl_coef > 0) is k3 to the initial policy, added per token before aggregation;
- mini-batches are contiguous slices of the step's rows in rollout order (no reshuffle per epoch),
  which keeps the update independent of the number of processes when mini_batches = 1;
- ppo_clip carries verl's guards, which the PPO/GRPO papers lack: dual-clip (c = 3, A < 0) and the
  log-ratio clamped to +-20 before exp; the k3 estimate is clamped to 10 (algo.*, 0 = off);
- seq_mean_token_sum_norm is verl's formula over the whole mini-batch (verl's scale depends on its
  micro-batch count and ranks); dr_grpo divides by the mini-batch's sequences x max_new_tokens (TRL).
As the papers and verl/TRL do: log-probs, ratio, KL and entropy are those of logits / temperature;
old, new and reference log-probs run under one precision; Clip-Cov / KL-Cov pick their tokens over
the whole mini-batch. Memory (training/logprobs.py): micro-batches are rows packed without padding
up to `max_tokens_per_micro_batch`, logits exist only at completion positions, a chunk at a time.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from tasks import trainer_layout
from training import checkpoint, parallel
from training import losses as L
from training.checkpoint import MASK_SUBDIR
from training.config import TrainConfig
from training.data import load_prompts, run_order
from training.logprobs import no_logits, prepare
from training.mask import LongActMask
from training.rewards import score
from training.rollout import HFRollout, prompt_ids, template_opens_thinking
from training.update import Learner, Row, make_learner, optimizer, recompute_old_logps, update

# ---- pieces the loop calls -----------------------------------------------------------------

def calibration_batches(tok, prompts, cfg: TrainConfig, device):
    """The first `calib_prompts` prompts exactly as the rollout sends them: chat template, middle
    truncation to `max_prompt_tokens` (training/rollout.py `prompt_ids`), one at a time (no padding)."""
    for p in prompts[: cfg.calib_prompts]:
        ids = torch.tensor([prompt_ids(tok, p.prompt, cfg.max_prompt_tokens, cfg.sampling.enable_thinking)], device=device)
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def sample_seed(seed: int, data_index: int) -> int:
    """Sampling seed of one prompt's group: a function of the run seed and the global data index
    only, so a group is the same whatever the number of processes, batching or resume point."""
    return (seed * 1_000_003 + data_index) % (2**31 - 1)


@dataclass(frozen=True)
class Group:
    """One prompt's completions as rolled out, and their rewards."""

    rollout: object
    """The rollout batch that holds them (training/rollout.py)."""
    rows: slice
    """Where the group's completions are in `rollout`."""
    rewards: torch.Tensor
    """[group_size]: task reward plus any overlong shaping."""


class Collected(NamedTuple):
    """What `collect_groups` hands the step."""

    groups: list[Group]
    """This rank's kept groups, in data order."""
    data_pos: int
    """Where the next step starts in the prompt order."""
    counts: dict[str, float]
    """The dynamic-sampling and unclosed-thinking scalars to log."""


def collect_groups(cfg: TrainConfig, d: parallel.Dist, prompts, rollout, data_pos: int) -> Collected:
    """1. rollout + 2. reward for this rank's share of the step's prompt slots.

    Rewards score the answer after the thinking (training.rewards.score); unclosed thinking
    scores 0 and is counted. DAPO dynamic sampling drops groups whose task rewards (before
    overlong shaping: DAPO §3.2 filters on accuracy) are all equal and refills with fresh prompts,
    up to `max_refills` extra rounds; the first `prompts_per_step` kept groups in data order are
    used (every rank agrees on which, via one all-reduce of the kept flags per round).
    """
    pps, G = cfg.prompts_per_step, cfg.group_size
    kept, mine, rounds = [], {}, 1 + (cfg.algo.max_refills if cfg.algo.dynamic_sampling else 0)
    opened = template_opens_thinking(rollout.tok, cfg.sampling.enable_thinking)
    unclosed = 0
    for rnd in range(rounds):
        slots = list(range(d.rank, pps, d.world))
        batch = [prompts[(data_pos + s) % len(prompts)] for s in slots]
        ro = rollout.generate([p.prompt for p in batch], G, seeds=[sample_seed(cfg.seed, data_pos + s) for s in slots])
        scored = [score(p.reward, text, p.answers, opened)
                  for p, text in zip([p for p in batch for _ in range(G)], ro.texts)]
        unclosed += sum(u for _, u in scored)
        accuracy = torch.tensor([r for r, _ in scored], dtype=torch.float32)  # [n], the task's scorer
        rewards = accuracy
        if cfg.algo.overlong_max:
            rewards = rewards + L.overlong_penalty(ro.completion_mask.sum(1), cfg.algo.overlong_max, cfg.algo.overlong_cache)
        flags = [0.0] * pps
        for g, s in enumerate(slots):
            sl = slice(g * G, (g + 1) * G)
            if not (cfg.algo.dynamic_sampling and bool((accuracy[sl] == accuracy[sl][0]).all())):
                flags[s] = 1.0
                mine[(rnd, s)] = Group(ro, sl, rewards[sl])
        kept += [(rnd, s) for s, f in enumerate(d.all_sum(flags)) if f > 0]
        data_pos += pps
        if len(kept) >= pps or not cfg.algo.dynamic_sampling:
            break
    chosen = kept[:pps]
    counts = {"ds/groups_kept": len(chosen), "ds/groups_dropped": (rnd + 1) * pps - len(kept),
              "ds/groups_generated": (rnd + 1) * pps,
              # share of the step's completions (all rounds and ranks) whose thinking never closed
              "reward/thinking_unclosed": d.all_sum([float(unclosed)])[0] / ((rnd + 1) * pps * G)}
    return Collected([mine[k] for k in chosen if k in mine], data_pos, counts)


def build_rows(groups: list[Group], advantage, group_size: int) -> list[Row]:
    """3. advantage per group, one Row per completion."""
    rows = []
    for g in groups:
        ro, adv = g.rollout, advantage(g.rewards, group_size)
        rows += [Row(ro.input_ids[i], ro.attention_mask[i], ro.completion_mask[i], ro.prompt_len, adv[j],
                     rollout_logp=ro.logprobs[i] if ro.logprobs is not None else None)
                 for j, i in enumerate(range(g.rows.start, g.rows.stop))]
    return rows


def make_rollout(cfg: TrainConfig, model, tok, model_dir, d: parallel.Dist):
    if cfg.backend == "vllm":
        from training.rollout import VLLMRollout

        return VLLMRollout(str(model_dir), tok, cfg.sampling, cfg.max_prompt_tokens, seed=cfg.seed,
                           weight_sync_bucket_mb=cfg.weight_sync_bucket_mb, **cfg.vllm)
    return HFRollout(model, tok, cfg.sampling, cfg.max_prompt_tokens, synced_gpus=d.mode == "fsdp")


# ---- the loop ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """What `setup` prepares for the steps, besides the `Learner`."""
    cfg: TrainConfig
    d: parallel.Dist
    out_dir: Path
    tok: object
    prompts: list
    rollout: object  # training/rollout.py: HFRollout or VLLMRollout
    advantage: Callable  # training/losses.py ADVANTAGES entry
    start: int  # first step to run (> 0 when resuming)
    data_pos: int  # position in the prompt order where the first step starts
    log: Callable
    tb: object | None = None  # TensorBoard writer (main process, when tensorboard is installed)


def calibrate_mask(model, tok, prompts, cfg: TrainConfig, device) -> LongActMask:
    """Saliency on the first calib_prompts prompts, with the current weights."""
    # the random control's draw follows the run seed unless mask.seed pins it, so replicates differ
    mask_cfg = cfg.mask if cfg.mask.seed is not None else dataclasses.replace(cfg.mask, seed=cfg.seed)
    with no_logits(model):  # q/k activations only: no [T, V] logits for a long prompt
        return LongActMask.calibrate(model, calibration_batches(tok, prompts, cfg, device), mask_cfg)


def setup(cfg: TrainConfig, resume: bool = True, log=print) -> tuple[Run, Learner]:
    """Processes, output directory and config, seeds, policy (from the latest checkpoint when
    resuming), reference, mask, optimizer, trainer state and rollout engine."""
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = parallel.init(cfg.parallel, cfg.device)
    log = log if d.main else (lambda *_: None)
    if cfg.prompts_per_step % d.world:
        raise ValueError(f"prompts_per_step ({cfg.prompts_per_step}) must be a multiple of the {d.world} processes")
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if d.main:
        (out_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    ckpt = checkpoint.latest(out_dir) if resume else None
    torch.manual_seed(cfg.seed + d.rank)  # only Clip-Cov's token draw uses it; rollouts are seeded per prompt
    random.seed(cfg.seed)

    attn = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(ckpt or cfg.model, dtype=torch.float32, **attn).to(d.device)
    prepare(model, cfg.gradient_checkpointing)
    tok = AutoTokenizer.from_pretrained(ckpt or cfg.model)
    if not cfg.data.tokenizer:
        cfg.data.tokenizer = cfg.model
    prompts = run_order(load_prompts(cfg.data), cfg.seed)
    ref = None
    if cfg.algo.kl_coef > 0:  # the reference is the starting model, also when resuming
        ref = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32, **attn).to(d.device).eval().requires_grad_(False)
        prepare(ref)
        if d.mode == "fsdp":
            parallel.wrap(ref, d, cfg.bf16)  # sharded like the policy; no optimizer, no mask

    mask = LongActMask.load(ckpt / MASK_SUBDIR) if ckpt else calibrate_mask(model, tok, prompts, cfg, d.device)
    net = parallel.wrap(model, d, cfg.bf16)  # after calibration (full weights), before the optimizer
    opt = optimizer(cfg, model)
    mask.attach(model, opt)  # before loading optimizer state: attach clears q/k moments
    start, data_pos = checkpoint.load_state(ckpt, model, opt, d, log) if ckpt else (0, 0)
    if ckpt:
        log(f"resumed from {ckpt} at step {start}")
    rollout = make_rollout(cfg, model, tok, ckpt or cfg.model, d)
    if d.main:  # backend, engine version and sampling parameters, beside config.yaml
        (out_dir / "rollout.json").write_text(json.dumps(rollout.record(), indent=2) + "\n")
    learner = make_learner(cfg, d, net, model, opt, mask, ref)
    run = Run(cfg, d, out_dir, tok, prompts, rollout, L.ADVANTAGES[cfg.algo.advantage], start, data_pos, log,
              _tensorboard(out_dir) if d.main else None)
    return run, learner


def refresh_mask(run: Run, learner: Learner) -> Learner:
    """A new mask from the current weights, in place of the old one."""
    learner.mask.detach()  # else the old mask's hooks keep zeroing rows the new one updates
    mask = calibrate_mask(learner.model, run.tok, run.prompts, run.cfg, run.d.device)
    mask.attach(learner.model, learner.opt)
    return dataclasses.replace(learner, mask=mask)


def train_step(run: Run, learner: Learner, step: int, data_pos: int, skipped: int, t0: float) -> tuple[int, dict]:
    """One step, 1. rollout to 8. the logged scalars, from data position `data_pos`; `skipped`
    non-finite updates so far, `t0` the step's start. Returns (next data position, scalars)."""
    cfg, d, log = run.cfg, run.d, run.log
    # 1. rollout + 2. reward (+ dynamic sampling) -> 3. advantages
    groups, data_pos, ds_counts = collect_groups(cfg, d, run.prompts, run.rollout, data_pos)
    rows = build_rows(groups, run.advantage, cfg.group_size)
    t_rollout = time.perf_counter() - t0
    if cfg.ppo_epochs * cfg.mini_batches > 1:
        recompute_old_logps(learner.model, rows, cfg, d)

    # 4.-7. loss -> mask -> clip -> step, mu = ppo_epochs x mini_batches times
    updates, total_rows = [], d.all_sum([float(len(rows))])[0]
    if not total_rows:  # dynamic sampling found no informative group
        log(f"step {step + 1}: every group had equal rewards ({ds_counts['ds/groups_generated']} generated); "
            "no update (an optimizer step on zero gradients would still apply weight decay)")
    for _ in range(cfg.ppo_epochs if total_rows else 0):
        for i in range(cfg.mini_batches):
            chunk = rows[i * len(rows) // cfg.mini_batches:(i + 1) * len(rows) // cfg.mini_batches]
            updates.append(update(learner, chunk, fresh=not updates))
    t_update = time.perf_counter() - t0 - t_rollout
    skipped += sum(not u.applied for u in updates)
    for i, u in enumerate(updates):
        if not u.applied:
            log(f"step {step + 1} update {i + 1}: non-finite loss or gradient (loss {u.loss}, "
                f"grad norm {u.grad_norm}); update skipped")
    run.rollout.sync(learner.model)

    # 8. scalars to log (means over the step's updates; reward over kept groups of all ranks)
    r_sum, r_n = d.all_sum([float(sum(g.rewards.sum() for g in groups)), float(sum(g.rewards.numel() for g in groups))])
    changed = learner.mask.masked_rows_changed()
    changed = int(d.all_sum([changed])[0]) if d.mode == "fsdp" else changed
    return data_pos, {
        "reward": r_sum / r_n if r_n else 0.0,
        **{k: sum(getattr(u, k) for u in updates) / max(len(updates), 1)
           for k in ("loss", "kl", "entropy", "clip_frac", "grad_norm")},
        # mean |rollout - trainer| log-prob per token at the first update (policy = sampler)
        "rollout/logp_abs_diff": updates[0].rollout_logp_diff if updates else 0.0,
        "updates": len(updates),
        **ds_counts, "mask/qk_rows_updated": learner.mask.rows_updated(), "mask/masked_rows_changed": changed,
        "time/step_s": time.perf_counter() - t0, "time/rollout_s": t_rollout, "time/update_s": t_update,
        "skipped_nonfinite_steps": skipped}


def train(cfg: TrainConfig, resume: bool = True, log=print) -> Path:
    from tqdm import tqdm

    run, learner = setup(cfg, resume, log)
    d, data_pos, skipped, final = run.d, run.data_pos, 0, None
    for step in tqdm(range(run.start, cfg.steps), initial=run.start, total=cfg.steps, desc="train", file=sys.stderr,
                     disable=not d.main):
        t0 = time.perf_counter()
        # on resume too: the checkpoint before a refresh step holds the mask being replaced
        if cfg.mask.refresh_every and step > 0 and step % cfg.mask.refresh_every == 0:
            learner = refresh_mask(run, learner)
        data_pos, scalars = train_step(run, learner, step, data_pos, skipped, t0)  # 1.-8.
        skipped = scalars["skipped_nonfinite_steps"]
        if d.main:  # 8. log
            _log_scalars(run.out_dir, run.tb, step + 1, scalars)
        if (step + 1) == cfg.steps or (cfg.save_every and (step + 1) % cfg.save_every == 0):  # 9. checkpoint
            final = checkpoint.save(run.out_dir, step + 1, learner.model, run.tok, learner.mask, learner.opt, data_pos, d)
    if run.tb:
        run.tb.close()
    if d.main:
        run.log(learning_signal(trainer_layout.read_metrics(run.out_dir)))
    return final or checkpoint.latest(run.out_dir)


def learning_signal(records: list[dict]) -> str:
    """One line on whether the run could learn: how many steps had a non-zero gradient (a GRPO
    group whose rewards all match has zero advantage), and the reward early and late."""
    if not records:
        return "learning signal: no steps logged"
    moved = sum(1 for r in records if r.get("updates") and r.get("grad_norm", 0.0) > 0)
    k = max(1, len(records) // 3)
    early, late = (sum(r["reward"] for r in part) / len(part) for part in (records[:k], records[-k:]))
    if not moved:
        return (f"learning signal: none. In all {len(records)} steps every group's completions got equal rewards "
                f"(mean reward {early:.2f} early, {late:.2f} late), so no gradient reached the weights (weight decay "
                "alone moved them). Train from a model that solves some of the prompts, e.g. "
                "`--config training/configs/tiny-study.yaml` (from assets/tiny-qwen3-skilled).")
    return (f"learning signal: {moved} of {len(records)} steps had a non-zero gradient; mean reward "
            f"{early:.3f} over the first {k} step(s), {late:.3f} over the last {k}")


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; metrics.jsonl always has the same scalars
        return None
    return SummaryWriter(str(out_dir / "tb"))


def _log_scalars(out_dir: Path, tb, step: int, scalars: dict) -> None:
    trainer_layout.append_metrics(out_dir, step, scalars)
    if tb:
        for k, v in scalars.items():
            tb.add_scalar(k, v, step)
