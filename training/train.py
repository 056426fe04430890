"""The LongAct RL loop: rollout -> reward -> advantage -> loss -> mask -> clip -> step -> log -> checkpoint.

    python -m training.train --config training/configs/tiny-cpu.yaml [--dry-run] [key=value ...]

Config: dataclass defaults < YAML preset < `key=value` overrides (dotted for nested: mask.strategy=random);
unknown keys are errors. The resolved config is written to <out_dir>/config.yaml.
Output: <out_dir>/step-N/ = HF safetensors (vLLM serves it as is) + mask.* + trainer_state.pt;
<out_dir>/metrics.jsonl (+ TensorBoard scalars when tensorboard is installed).

Departures from the papers (on purpose, all configurable or documented):
- one optimizer step per rollout batch (fully on-policy, as DAPO/GRPO with mu=1): old log-probs
  equal the current ones detached, so the PPO ratio is 1 at the step and clipping acts via the
  gradient only; Clip-Cov/KL-Cov token selection still applies;
- the LongAct mask is static by default (refresh via mask.refresh_every); saliency is the
  per-channel mean |q|,|k| after q_norm/k_norm before RoPE over the first `calib_prompts` prompts;
- the KL term (kl_coef > 0) is k3 to the initial policy, added per token before aggregation.
"""

from __future__ import annotations

import copy
import math
import dataclasses
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from training import losses as L
from training.data import DataConfig, load_prompts
from training.mask import LongActMask, MaskConfig, qk_modules
from training.rewards import REWARDS
from training.rollout import HFRollout, SamplingConfig

MASK_SUBDIR = "longact_mask"


@dataclass
class AlgoConfig:
    advantage: str = "grpo"
    policy_loss: str = "ppo_clip"
    aggregation: str = "seq_mean_token_mean"
    eps_low: float = 0.2
    eps_high: float = 0.2
    loss_kwargs: dict = field(default_factory=dict)  # e.g. clip_ratio for clip_cov
    kl_coef: float = 0.0
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, refill
    max_refills: int = 2
    overlong_max: int = 0  # DAPO overlong shaping; 0 = off
    overlong_cache: int = 0


@dataclass
class TrainConfig:
    model: str = ""
    out_dir: str = "runs/tiny"
    seed: int = 0
    steps: int = 3
    prompts_per_step: int = 2
    group_size: int = 4
    micro_batch: int = 4
    lr: float = 1e-5
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.999)
    max_grad_norm: float = 1.0
    max_prompt_tokens: int = 512
    calib_prompts: int = 8
    save_every: int = 0  # 0 = only the final step
    backend: str = "hf"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)


# ---- config: defaults < YAML < overrides -----------------------------------------------------

def _merge(obj, values: dict, where: str):
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(f"{where}: unknown key {key!r}, expected one of {', '.join(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key}: expected a mapping, got {value!r}")
            value = _merge(current, value, f"{where}.{key}")
        elif isinstance(current, tuple):
            value = tuple(value)
        elif isinstance(current, bool) and not isinstance(value, bool):
            raise ValueError(f"{where}.{key}: expected true/false, got {value!r}")
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            if isinstance(current, float) and isinstance(value, str):
                value = _float_or_str(value)  # YAML 1.1 reads "1e-3" as a string
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
            value = type(current)(value) if isinstance(current, float) else value
        elif isinstance(current, str) and not isinstance(value, str):
            raise ValueError(f"{where}.{key}: expected a string, got {value!r}")
        kwargs[key] = value
    try:
        return dataclasses.replace(obj, **kwargs)
    except ValueError as e:  # __post_init__ checks (MaskConfig)
        raise ValueError(f"{where}: {e}") from None


def _float_or_str(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    import yaml

    cfg = TrainConfig()
    if path:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
        cfg = _merge(cfg, raw, path)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r}: expected key=value")
        nested: dict = {}
        node = nested
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(text)
        cfg = _merge(cfg, nested, f"override {item!r}")
    if not cfg.model:
        raise ValueError(f"{path or 'config'}: field 'model' is required (a HF model directory)")
    return cfg


# ---- pieces the loop calls -----------------------------------------------------------------

def token_logps(model, ids, am, P):
    """Log-prob and entropy of each completion token. ids/am [B, P+C] -> ([B, C], [B, C])."""
    pos = (am.cumsum(1) - 1).clamp(min=0)  # left padding: positions as generate used them
    logits = model(input_ids=ids, attention_mask=am, position_ids=pos).logits[:, P - 1:-1].float()
    lp_all = torch.log_softmax(logits, -1)  # [B, C, V]
    lp = lp_all.gather(-1, ids[:, P:].unsqueeze(-1)).squeeze(-1)
    entropy = -(lp_all.exp() * lp_all).sum(-1)
    return lp, entropy


def calibration_batches(tok, prompts, cfg: TrainConfig):
    texts = [p.prompt for p in prompts[: cfg.calib_prompts]]
    for t in texts:  # one at a time: no padding, long prompts fit
        enc = tok(t, return_tensors="pt", truncation=True, max_length=cfg.max_prompt_tokens)
        yield {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def save_checkpoint(out_dir: Path, step: int, model, tok, mask, opt, data_pos, cfg):
    """Write step-N atomically: build in a temp dir, then rename."""
    final = out_dir / f"step-{step}"
    tmp = out_dir / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    mask.save(tmp / MASK_SUBDIR)  # a subfolder: vLLM loads every *.safetensors at the top level
    torch.save({"step": step, "data_pos": data_pos, "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def latest_checkpoint(out_dir: Path) -> Path | None:
    steps = sorted((int(p.name.split("-")[1]), p) for p in out_dir.glob("step-*") if (p / "trainer_state.pt").exists())
    return steps[-1][1] if steps else None


# ---- the loop ------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = True, log=print) -> Path:
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import yaml

    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    ckpt = latest_checkpoint(out_dir) if resume else None
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)

    model = AutoModelForCausalLM.from_pretrained(ckpt or cfg.model, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(ckpt or cfg.model)
    if not cfg.data.tokenizer:
        cfg.data.tokenizer = cfg.model
    prompts = load_prompts(cfg.data)
    ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.algo.kl_coef > 0 else None
    if ref is not None and ckpt:  # the reference is the starting model, not the checkpoint
        ref = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    mask = LongActMask.load(ckpt / MASK_SUBDIR) if ckpt else LongActMask.calibrate(model, calibration_batches(tok, prompts, cfg), cfg.mask)
    mask.attach(model, opt)  # before loading optimizer state: attach clears q/k moments
    start, data_pos = 0, 0
    if ckpt:
        state = torch.load(ckpt / "trainer_state.pt", weights_only=True)  # tensors and plain data only
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        start, data_pos = state["step"], state["data_pos"]
        log(f"resumed from {ckpt} at step {start}")
    rollout = HFRollout(model, tok, cfg.sampling, cfg.max_prompt_tokens)
    advantage = L.lookup(L.ADVANTAGES, cfg.algo.advantage, "algo.advantage")
    policy_loss = L.lookup(L.POLICY_LOSSES, cfg.algo.policy_loss, "algo.policy_loss")
    aggregate = L.lookup(L.AGGREGATIONS, cfg.algo.aggregation, "algo.aggregation")
    tb = _tensorboard(out_dir)
    final = None
    skipped_steps = 0

    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train", file=sys.stderr):
        t0 = time.perf_counter()
        if cfg.mask.refresh_every and step > start and step % cfg.mask.refresh_every == 0:
            mask = LongActMask.calibrate(model, calibration_batches(tok, prompts, cfg), cfg.mask)
            mask.attach(model, opt)

        # 1. rollout + 2. reward (dynamic sampling refills groups whose rewards are all equal)
        kept, dropped, generated = [], 0, 0
        for _ in range(1 + (cfg.algo.max_refills if cfg.algo.dynamic_sampling else 0)):
            batch = [prompts[(data_pos + i) % len(prompts)] for i in range(cfg.prompts_per_step)]
            data_pos += cfg.prompts_per_step
            ro = rollout.generate([p.prompt for p in batch], cfg.group_size)
            generated += len(batch)
            rewards = torch.tensor([REWARDS[p.reward](text, p.answers)
                                    for p, text in zip([p for p in batch for _ in range(cfg.group_size)], ro.texts)])
            if cfg.algo.overlong_max:
                rewards = rewards + L.overlong_penalty(ro.completion_mask.sum(1), cfg.algo.overlong_max, cfg.algo.overlong_cache)
            for g in range(len(batch)):
                sl = slice(g * cfg.group_size, (g + 1) * cfg.group_size)
                if cfg.algo.dynamic_sampling and bool((rewards[sl] == rewards[sl][0]).all()):
                    dropped += 1
                    continue
                kept.append((ro, sl, rewards[sl]))
            if len(kept) >= cfg.prompts_per_step or not cfg.algo.dynamic_sampling:
                break
        kept = kept[: cfg.prompts_per_step]

        # 3. advantage per group
        rows = []  # (ids [P+C], am, cmask, P, adv) per completion
        for ro, sl, r in kept:
            adv = advantage(r, cfg.group_size)
            for j, i in enumerate(range(sl.start, sl.stop)):
                rows.append((ro.input_ids[i], ro.attention_mask[i], ro.completion_mask[i], ro.prompt_len, adv[j]))
        num_tokens = sum(float(r[2].sum()) for r in rows)

        # 4. loss over micro-batches with step-global normalisers (exact accumulation)
        stats = {"loss": 0.0, "kl": 0.0, "entropy": 0.0, "clip_frac": 0.0}
        for m0 in range(0, len(rows), cfg.micro_batch):
            mb = rows[m0:m0 + cfg.micro_batch]
            ids, am, cm, P = _stack(mb)
            adv = torch.stack([r[4] for r in mb])  # [b]
            lp, ent = token_logps(model, ids, am, P)  # [b, C]
            per_token, s = policy_loss(lp, lp.detach(), adv, cm, eps_low=cfg.algo.eps_low,
                                       eps_high=cfg.algo.eps_high, **cfg.algo.loss_kwargs)
            if ref is not None:
                with torch.no_grad():
                    ref_lp, _ = token_logps(ref, ids, am, P)
                kl = L.k3_kl(lp, ref_lp)
                per_token = per_token + cfg.algo.kl_coef * kl
                stats["kl"] += float((kl.detach() * cm).sum()) / num_tokens
            loss = aggregate(per_token, cm, num_tokens=num_tokens, num_seqs=float(len(rows)))
            loss.backward()  # 5. mask: grad hooks zero masked Q/K rows here, before clipping
            stats["loss"] += float(loss.detach())
            stats["entropy"] += float((ent.detach() * cm).sum()) / num_tokens
            stats["clip_frac"] += float(s["clip_frac"]) * len(mb) / len(rows)

        # 6. clip + 7. step (then put masked rows back: AdamW decayed them). A non-finite loss or
        # gradient skips the update: nothing moves, the step is counted and logged.
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        finite = math.isfinite(stats["loss"]) and bool(torch.isfinite(grad_norm))
        if finite:
            opt.step()
            mask.after_step()
        else:
            skipped_steps += 1
            log(f"step {step + 1}: non-finite loss or gradient (loss {stats['loss']}, grad norm {float(grad_norm)}); "
                "update skipped")
        opt.zero_grad(set_to_none=True)
        rollout.sync(model)

        # 8. log
        scalars = {"reward": float(torch.cat([r for _, _, r in kept]).mean()) if kept else 0.0, **stats,
                   "grad_norm": float(grad_norm), "ds/groups_kept": len(kept), "ds/groups_dropped": dropped,
                   "ds/groups_generated": generated, "mask/qk_rows_updated": mask.rows_updated(),
                   "mask/masked_rows_changed": mask.masked_rows_changed(), "time/step_s": time.perf_counter() - t0,
                   "skipped_nonfinite_steps": skipped_steps}
        _log_scalars(out_dir, tb, step + 1, scalars)

        # 9. checkpoint
        if (step + 1) == cfg.steps or (cfg.save_every and (step + 1) % cfg.save_every == 0):
            final = save_checkpoint(out_dir, step + 1, model, tok, mask, opt, data_pos, cfg)
    if tb:
        tb.close()
    return final or latest_checkpoint(out_dir)


def _stack(mb):
    """Pad a micro-batch of rows from possibly different rollouts to one [b, P+C] layout."""
    P = max(r[3] for r in mb)
    C = max(r[0].shape[0] - r[3] for r in mb)
    ids = torch.zeros(len(mb), P + C, dtype=torch.long)
    am = torch.zeros_like(ids)
    cm = torch.zeros(len(mb), C)
    for i, (x, a, c, p, _) in enumerate(mb):
        ids[i, P - p:P + x.shape[0] - p] = x  # prompt right-aligned at P, completion after it
        am[i, P - p:P + x.shape[0] - p] = a
        cm[i, :c.shape[0]] = c
    return ids, am, cm, P


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; metrics.jsonl always has the same scalars
        return None
    return SummaryWriter(str(out_dir / "tb"))


def _log_scalars(out_dir: Path, tb, step: int, scalars: dict) -> None:
    with open(out_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **scalars}) + "\n")
    if tb:
        for k, v in scalars.items():
            tb.add_scalar(k, v, step)


def main(argv=None) -> int:
    import argparse
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="YAML preset (training/configs/*.yaml)")
    ap.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("overrides", nargs="*", help="key=value, dotted for nested (mask.strategy=random)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        return 0
    print(train(cfg, resume=not args.no_resume))
    return 0


if __name__ == "__main__":
    sys.exit(main())
