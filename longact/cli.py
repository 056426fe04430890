"""`longact`: the command-line entry point.

Each verb is an `add_<verb>(sub)` function that adds its parser (flags, help, examples) and sets
its handler as `func`; `cmd_<verb>(args)` does the work, with its heavy imports inside. The verbs
live by what they are for: longact/setup_verbs.py (model, data, tasks), eval_verbs.py (eval,
show, merge), report_verbs.py (score, compare, demo, leaderboard), train_verbs.py (train,
experiment), stats_verbs.py (plan) and mask_verbs.py (mask)."""

from __future__ import annotations

import argparse
import sys

from longact import eval_verbs, mask_verbs, report_verbs, setup_verbs, stats_verbs, train_verbs
from tasks.errors import UserError

EPILOG = """\
examples:
  longact model build-tiny --out models/tiny-qwen3
  longact eval --model models/tiny-qwen3 --tasks tiny --max-model-len 2048
  longact eval --model Qwen/Qwen3-8B --tasks tiny --max-model-len 32768 --tensor-parallel-size 2
  longact eval --base-url http://127.0.0.1:8000 --tokenizer models/tiny-qwen3 --tasks tiny_niah
  longact eval --model models/tiny-qwen3 --tasks tiny --backend hf --max-model-len 2048
  longact show results/<run_id>
  longact score longbench_v2 official_preds.jsonl --json
  longact tasks
"""


def build_parser() -> argparse.ArgumentParser:
    """The `longact` parser: each verb registers its own flags, help and handler (`func`)."""
    p = argparse.ArgumentParser(
        prog="longact",
        description="Long-context evaluation (LongBench v2, RULER, InfiniteBench on vLLM) and LongAct RL training.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    for add_verb in (setup_verbs.add_model, eval_verbs.add_eval, eval_verbs.add_show, eval_verbs.add_merge,
                     report_verbs.add_score, report_verbs.add_compare, report_verbs.add_demo,
                     report_verbs.add_leaderboard, setup_verbs.add_data, setup_verbs.add_tasks, train_verbs.add_train,
                     train_verbs.add_experiment, stats_verbs.add_plan, mask_verbs.add_mask):
        add_verb(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # harness/interrupt.py: 130 for SIGINT, 143 for SIGTERM
        print(f"interrupted ({e or 'SIGINT'}); finished work is saved: rerun the same command to resume",
              file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except BrokenPipeError:  # `longact show RUN | head`: the reader left; nothing went wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run() -> None:
    """The console entry point: `main`, then a prompt exit. Python's exit hooks (atexit: logging,
    the request cache, TensorBoard writers) run, and the output is flushed; the interpreter's own
    teardown of its modules is skipped, since the OS reclaims that memory anyway. That teardown
    (torch, transformers, lm-eval) took 2.5 s on an idle machine and 6-10 s on a loaded one, after
    the run had already ended, e.g. after a Ctrl-C: measured from the signal to the exit."""
    import atexit
    import os

    from harness import interrupt

    code = main()
    atexit._run_exitfuncs()
    interrupt.log(f"exit {code}")  # the last line of a stopped run's log
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`longact show | head`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
