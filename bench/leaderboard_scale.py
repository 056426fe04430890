"""How long `longact leaderboard` takes over many runs: generated result directories (34 models x
6 runs = 204 runs by default: LongBench v2, RULER at 4 lengths, InfiniteBench; tests/leaderboard_data.py)
built into the page, and the same at a fifth of the models, for the time per run.

    python bench/leaderboard_scale.py [--models 34] [--lengths 4096,8192,16384,32768] [--items 20]

Prints, at both sizes: `build` (read every run.json and samples file, join runs into model rows,
compute each benchmark's headline columns) and the whole page (`write_leaderboard`: build, the
plots, the HTML and Markdown), and the ratio of build time per run large/small (about 1: linear;
the plots cost about the same at any size: at most 12 models a figure). Each side is timed in this
one process after one untimed build (imports, file cache), the small one first; the best of
`--repeats`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import record_figure  # noqa: E402


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(root: Path, repeats: int) -> dict:
    from harness.records.io import find_runs
    from harness.report.leaderboard import build, write_leaderboard

    n_runs = len(find_runs(root))
    write_leaderboard(root, root.parent / f"{root.name}-site")  # warm: imports (matplotlib, pandas), file cache
    build_s = best_of(repeats, lambda: build(root))
    page_s = best_of(repeats, lambda: write_leaderboard(root, root.parent / f"{root.name}-site"))
    page = root.parent / f"{root.name}-site" / "index.html"
    board = build(root)
    return {"runs": n_runs, "models": len(board.rows), "build_s": build_s, "page_s": page_s,
            "page_mb": page.stat().st_size / 1e6}


def main() -> None:
    from tests.leaderboard_data import write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=34)
    ap.add_argument("--lengths", default="4096,8192,16384,32768")
    ap.add_argument("--items", type=int, default=20, help="items per task (and per RULER length)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    lengths = tuple(int(x) for x in args.lengths.split(","))
    scratch = Path(tempfile.mkdtemp(prefix="leaderboard-scale-"))
    try:
        sizes = {}
        for label, n in (("small", max(1, args.models // 5)), ("large", args.models)):
            write_results(scratch / label, n_models=n, lengths=lengths, items=args.items)
            sizes[label] = measure(scratch / label, args.repeats)
        for label, m in sizes.items():
            print(f"{label}: {m['runs']} runs, {m['models']} model rows, {args.items} items per task: build "
                  f"{m['build_s']:.2f} s, whole page {m['page_s']:.2f} s ({m['page_mb']:.1f} MB)")
        small, large = sizes["small"], sizes["large"]
        ratio = (large["build_s"] / large["runs"]) / (small["build_s"] / small["runs"])
        print(f"build time per run, {large['runs']} runs / {small['runs']} runs: {ratio:.2f} (1 = linear)")
        note = f"{large['runs']} runs, {large['models']} models, {args.items} items per task and length"
        record_figure("leaderboard_scale.page_s", round(large["page_s"], 2), "s", note)
        record_figure("leaderboard_scale.build_s", round(large["build_s"], 2), "s", note)
        record_figure("leaderboard_scale.per_run_ratio", round(ratio, 2), "x",
                      f"{large['runs']} runs against {small['runs']}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
