"""`longact plan`: how big a study must be before any GPU is spent, as an `add_<verb>(sub)` like
the other verbs (longact/cli.py). The arithmetic is harness/report/power.py."""

from __future__ import annotations

import argparse
import math

from tasks.errors import UserError

EXAMPLES = """examples:
  longact plan --effect 3.9 --discordance 0.25        # paired items needed to detect 3.9 points
  longact plan --items 503 --discordance 0.2          # the smallest effect 503 items can detect
  longact plan --effect 5 --from results/base results/longact   # discordance measured on a pilot's runs
  longact plan --effect 2 --seed-sd 1.5               # seeds needed, from the spread between seeds
  longact plan --seeds 3 --seed-sd 1.5                # the smallest effect 3 seeds can detect

Effects are in score points (percent for 0/100 scores); 80% power, two-sided 5% unless --power/--alpha.
discordance = the share of paired items the two checkpoints score differently (for 0/100 scores).
"""


def add_plan(sub) -> None:
    p = sub.add_parser("plan", help="study size: items and seeds needed to detect an effect, or the effect a size detects",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--effect", type=float, help="the difference to detect, in score points")
    p.add_argument("--discordance", type=float, help="share of paired items scored differently (0-1)")
    p.add_argument("--from", dest="pilot", nargs=2, metavar="RUN", help="two pilot run directories: their discordance")
    p.add_argument("--items", type=int, help="paired items available: report the effect they can detect")
    p.add_argument("--seed-sd", type=float, help="standard deviation of the per-seed differences, in score points")
    p.add_argument("--seeds", type=int, help="seeds available: report the effect they can detect")
    p.add_argument("--max-items", type=int, default=100_000, help="largest item count to consider (default: %(default)s)")
    p.add_argument("--max-seeds", type=int, default=100, help="largest seed count to consider (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default: %(default)s)")
    p.add_argument("--power", type=float, default=0.8, help="power (default: %(default)s)")
    p.set_defaults(func=cmd_plan)


def _check(args) -> None:
    """Every mistake refused before any work, one line each."""
    if not 0 < args.alpha < 1 or not 0 < args.power < 1:
        raise UserError(f"--alpha {args.alpha:g} / --power {args.power:g}: both must lie strictly between 0 and 1")
    if args.effect is not None and not args.effect > 0:
        raise UserError(f"--effect: {args.effect:g} must be a positive number of points")
    if args.discordance is not None and not 0 < args.discordance <= 1:
        raise UserError(f"--discordance: {args.discordance:g} must be a share in (0, 1]")
    if args.discordance is not None and args.pilot:
        raise UserError("give --discordance or --from, not both")
    for flag, value in (("--items", args.items), ("--seeds", args.seeds), ("--max-items", args.max_items),
                        ("--max-seeds", args.max_seeds)):
        if value is not None and value < 1:
            raise UserError(f"{flag}: {value} must be at least 1")
    if args.seed_sd is not None and not args.seed_sd >= 0:
        raise UserError(f"--seed-sd: {args.seed_sd:g} must be 0 or more")
    items_q = args.discordance is not None or args.pilot
    seeds_q = args.seed_sd is not None
    if not items_q and not seeds_q:
        raise UserError("say what the noise is: --discordance (or --from RUN RUN) for items, --seed-sd for seeds")
    if items_q and args.effect is None and args.items is None:
        raise UserError("with --discordance/--from give --effect (items needed) or --items (effect detectable)")
    if seeds_q and args.effect is None and args.seeds is None:
        raise UserError("with --seed-sd give --effect (seeds needed) or --seeds (effect detectable)")


def pilot_discordance(a: str, b: str) -> tuple[float, int, dict[str, tuple[float, int]]]:
    """(discordance over all shared items, their number, per task) of two finished runs."""
    from harness.report.compare import load
    from harness.report.power import discordance

    ra, rb = load(a), load(b)
    per_task, pairs = {}, ([], [])
    for task in sorted(set(ra.record.tasks) & set(rb.record.tasks)):
        sa, sb = ra.scores(task, None), rb.scores(task, None)
        shared = sorted(set(sa) & set(sb))
        if shared:
            x, y = [sa[i] for i in shared], [sb[i] for i in shared]
            per_task[task] = (discordance(x, y), len(shared))
            pairs[0].extend(x)
            pairs[1].extend(y)
    if not pairs[0]:
        raise UserError(f"{a} and {b} share no scored items: a pilot needs two runs of the same tasks")
    return discordance(*pairs), len(pairs[0]), per_task


def cmd_plan(args) -> int:
    from harness.report import power as P

    _check(args)
    lines = [f"at {args.power:.0%} power, two-sided {args.alpha:.0%}:"]
    rate = args.discordance
    if args.pilot:
        rate, n, per_task = pilot_discordance(*args.pilot)
        lines.append(f"pilot: {rate:.1%} of {n} shared items scored differently "
                     + "(" + ", ".join(f"{t} {d:.0%} of {k}" for t, (d, k) in per_task.items()) + ")")
        if rate == 0:
            raise UserError("the pilot runs agree on every item: no discordance to plan from; give --discordance")
    if rate is not None:
        if args.items is not None:
            eff = P.paired_effect(rate, args.items, alpha=args.alpha, power=args.power)
            lines.append(f"items: {args.items:,} paired items with {rate:.0%} discordant detect "
                         + ("no effect at all" if math.isinf(eff) else f"{eff:.1f} points"))
        if args.effect is not None:
            try:
                need = P.items_needed(args.effect, rate, alpha=args.alpha, power=args.power)
            except ValueError as e:
                raise UserError(f"--effect {args.effect:g}: {e}") from None
            if need > args.max_items:
                raise UserError(f"--effect {args.effect:g}: needs {need:,} paired items at {rate:.0%} discordant, more "
                                f"than --max-items {args.max_items:,}")
            lines.append(f"items: {need:,} paired items detect {args.effect:g} points when {rate:.0%} of them are "
                         "scored differently")
    if args.seed_sd is not None:
        if args.seeds is not None:
            eff = P.seeds_effect(args.seed_sd, args.seeds, args.alpha, args.power)
            lines.append(f"seeds: {args.seeds} seeds with per-seed differences spread by {args.seed_sd:g} detect "
                         + ("no effect at all (a spread needs two seeds)" if math.isinf(eff) else f"{eff:.1f} points"))
        if args.effect is not None:
            try:
                need = P.seeds_needed(args.effect, args.seed_sd, args.alpha, args.power, max_seeds=args.max_seeds)
            except ValueError as e:
                raise UserError(f"--effect {args.effect:g}: {e} (--max-seeds {args.max_seeds})") from None
            lines.append(f"seeds: {need} seeds detect {args.effect:g} points when the per-seed differences spread "
                         f"by {args.seed_sd:g} (a t-test over seeds; the exact sign-flip p-value `compare` also "
                         "reports cannot fall below 0.05 with fewer than 6 seeds)")
    print("\n".join(lines))
    return 0
