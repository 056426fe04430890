"""`longact mask inspect`: is LongAct's premise true of a model? An `add_<verb>(sub)` that adds its
parser and handler (`func`), as the other verbs in longact/cli.py."""

from __future__ import annotations

from tasks.errors import UserError

EXAMPLES = """examples:
  longact mask inspect --model models/smollm2-135m --lengths 256,1024,4096,8192 --prompts 3 \\
      --out results/studies/smollm2/premise
  longact mask inspect --model assets/tiny-qwen3-skilled --lengths 256,1024,4096 --ratios 0.3

Writes premise.json (per layer and head: the saliency share of the top-r Q/K rows, and the overlap
of the top sets between prompts and between lengths, each with its chance level) and premise.png;
training/premise.py says how the documents are built. Reruns reuse the per-document saliency
cached under OUT/.cache/.
"""


def add_mask(sub) -> None:
    import argparse

    m = sub.add_parser("mask", help="inspect where Q/K saliency sits (the LongAct premise)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.set_defaults(func=cmd_mask_usage)
    msub = m.add_subparsers(dest="mask_verb", metavar="ACTION")
    i = msub.add_parser("inspect", help="share of Q/K saliency in the top rows vs context length, and its stability",
                        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("--model", required=True, help="a Hugging Face causal LM directory with q_proj/k_proj")
    i.add_argument("--lengths", required=True, help="comma list of context lengths in tokens, each within the "
                                                    "model's window (max_position_embeddings)")
    i.add_argument("--prompts", type=int, default=3, help="documents per length (default: %(default)s; at least 2)")
    i.add_argument("--ratios", default="0.1,0.3,0.5", help="comma list of top-row fractions in (0, 1] "
                                                           "(default: %(default)s)")
    i.add_argument("--site", default="pre_rope", help="where activations are read, as the mask's mask.site "
                                                      "(default: %(default)s)")
    i.add_argument("--statistic", default="mean_abs", help="per-row statistic, as the mask's mask.statistic "
                                                           "(default: %(default)s)")
    i.add_argument("--essays", help="essay corpus for the documents (default: the RULER haystack's, "
                                    "$LONGACT_CACHE/ruler/essays, else the generated stand-in)")
    i.add_argument("--out", help="output directory (default: results/premise/<model directory name>)")
    i.set_defaults(func=cmd_mask_inspect)


def cmd_mask_usage(args) -> int:
    raise UserError("usage: longact mask inspect --model DIR --lengths 256,1024,... [--prompts N] [--out DIR]")


def cmd_mask_inspect(args) -> int:
    from pathlib import Path

    from training.premise import PremiseConfig, check, describe, inspect, parse_list

    try:
        cfg = PremiseConfig(model=args.model, lengths=tuple(sorted(set(parse_list(args.lengths, int, "--lengths")))),
                            prompts=args.prompts, ratios=parse_list(args.ratios, float, "--ratios"),
                            site=args.site, statistic=args.statistic, essay_path=args.essays)
        check(cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    out = Path(args.out or Path("results/premise") / Path(args.model).resolve().name)
    report = inspect(cfg, out)
    for line in describe(report):
        print(line)
    print(f"wrote {out / 'premise.json'} and {out / 'premise.png'} in {report['seconds']['total']:.0f} s")
    return 0
