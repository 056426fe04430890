"""RULER scored two ways on one served model: lm-evaluation-harness's own RULER tasks and ours.

    python bench/peer_ruler.py                                   # models/smollm2-135m, 2048 tokens, 10 per task
    python bench/peer_ruler.py --base-url http://127.0.0.1:8000 --length 4096 --samples 20

One vLLM server (started here unless --base-url names one) answers both sides. lm-eval runs as a
user runs it (`python -m lm_eval --model local-completions ... --apply_chat_template`), this
project as `run_eval` (the `longact eval` path), same length, same number of items per task, both
greedy. Only the lm-eval tasks that build offline are compared: the noise-, needle- and
uuid-haystack NIAH tasks, VT, CWE and FWE (lm-eval downloads essays for the other NIAH tasks and
SQuAD/HotpotQA for QA). Each row prints both scores with 95% intervals (percentile bootstrap of
the per-item mean) and the difference with the interval of a difference of two independent means
(the items are drawn separately on each side, so they are not paired).

Reruns are cheap: this project's answers come from its request cache, lm-eval's from
`--use_cache` under the output directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import timed  # noqa: E402

# lm-eval task -> this project's task: the pairs whose lm-eval side builds without a download.
PAIRS = {
    "niah_single_1": "ruler_niah_single_1",
    "niah_multikey_2": "ruler_niah_multikey_2",
    "niah_multikey_3": "ruler_niah_multikey_3",
    "ruler_vt": "ruler_vt",
    "ruler_cwe": "ruler_cwe",
    "ruler_fwe": "ruler_fwe",
}


def bootstrap_ci(x: np.ndarray, resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of x (percent in, percent out)."""
    if len(x) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def diff_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Difference of means (a - b) and its normal-approximation 95% interval (independent samples)."""
    d = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))) if len(a) > 1 and len(b) > 1 else float("nan")
    return d, d - 1.96 * se, d + 1.96 * se


def ours(model: str, base_url: str, length: int, samples: int, out: Path, run_dir: str | None = None) -> dict[str, list[dict]]:
    """This project's per-item rows, scores in percent: task -> [{"score", "response", "target", "prompt_tokens"}]. With
    run_dir, the rows of that finished run (checked to be the same model, length and item count)."""
    from harness.records.io import load_run
    from harness.run.config import ClientConfig, EvalConfig, RunConfig
    from harness.run.runner import run_eval

    if run_dir is None:
        cfg = EvalConfig(tokenizer=model, client=ClientConfig(base_url=[base_url]),
                         run=RunConfig(tasks=list(PAIRS.values()), output_dir=str(out / "ours"), run_id=f"ruler-{length}",
                                       task_metadata={"lengths": [length], "num_samples": samples}))
        run_dir = run_eval(cfg)
    record = load_run(run_dir)
    meta = json.loads((Path(run_dir) / "config.json").read_text()).get("run", {}).get("task_metadata", {})
    if record.status != "complete" or meta.get("lengths") != [length] or meta.get("num_samples") != samples:
        raise SystemExit(f"{run_dir}: not a complete RULER run at lengths [{length}] with {samples} samples "
                         f"(status {record.status}, metadata {meta})")
    rows = {}
    for task in PAIRS.values():
        lines = (Path(run_dir) / f"samples_{task}.jsonl").read_text().splitlines()
        rows[task] = [{"score": float(r["metrics"]["score"]), "response": r["response"], "target": r["target"],
                       "prompt_tokens": r["prompt_tokens"]} for r in map(json.loads, lines)]
    return rows


def lm_eval_side(model: str, base_url: str, length: int, samples: int, out: Path, window: int) -> dict[str, list[dict]]:
    """lm-eval's per-item rows, from its own CLI with --log_samples, scores in percent: task -> [{"score", ...}].

    `tokenized_requests=True` because lm-eval applies a chat template on the completions endpoint
    only to requests it tokenizes itself (otherwise it sends the message list, which the endpoint
    rejects). `max_length` is the server's window, not the RULER length: lm-eval left-truncates
    a prompt longer than max_length - max_gen_toks, and its RULER sizing does not count the chat
    template's tokens."""
    out_dir = out / "lm_eval"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "local-completions",
           "--model_args", ",".join([f"base_url={base_url.rstrip('/')}/v1/completions", f"model={model}",
                                      f"tokenizer={model}", "tokenizer_backend=huggingface", "tokenized_requests=True",
                                      f"max_length={window}", "num_concurrent=8", "max_retries=3"]),
           "--tasks", ",".join(PAIRS), "--limit", str(samples), "--apply_chat_template",
           "--metadata", json.dumps({"max_seq_lengths": [length], "tokenizer": model}),
           "--gen_kwargs", "temperature=0", "--log_samples", "--output_path", str(out_dir),
           "--use_cache", str(out_dir / "cache")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    subprocess.run(cmd, check=True, env=env)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    rows = {}
    for task in PAIRS:
        files = sorted(out_dir.rglob(f"samples_{task}_*.jsonl"), key=lambda p: p.stat().st_mtime)
        assert files, f"lm-eval wrote no samples for {task} under {out_dir}"
        items = [json.loads(line) for line in files[-1].read_text().splitlines()]
        # the prompt as lm-eval sent it (chat template applied, its answer prefix at the end)
        rows[task] = [{"score": 100 * float(r[str(length)]), "response": r["resps"][0][0], "target": r["target"],
                       "doc_id": r["doc_id"], "prompt": r["arguments"]["gen_args_0"]["arg_0"],
                       "prompt_tokens": len(tok(r["arguments"]["gen_args_0"]["arg_0"], add_special_tokens=False).input_ids)}
                      for r in items]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/smollm2-135m", help="model directory (its tokenizer sizes both sides)")
    ap.add_argument("--base-url", help="a running server with this model (default: start one)")
    ap.add_argument("--length", type=int, default=2048, help="RULER sequence length (default: %(default)s)")
    ap.add_argument("--samples", type=int, default=10, help="items per task on each side (default: %(default)s)")
    ap.add_argument("--window", type=int, help="server window (default: twice --length)")
    ap.add_argument("--dtype", default="float32", help="dtype of a started server (default: %(default)s)")
    ap.add_argument("--out", default="runs/peer-ruler", help="where both sides write (default: %(default)s)")
    ap.add_argument("--ours-run", help="use this finished `longact eval --tasks ruler` run instead of running ours")
    args = ap.parse_args()
    out = Path(args.out)
    window = args.window or 2 * args.length
    out.mkdir(parents=True, exist_ok=True)

    def both(base_url: str):
        mine, t_ours = timed(ours, args.model, base_url, args.length, args.samples, out, args.ours_run)
        theirs, t_lm = timed(lm_eval_side, args.model, base_url, args.length, args.samples, out, window)
        return mine, theirs, t_ours, t_lm

    if args.base_url:
        mine, theirs, t_ours, t_lm = both(args.base_url)
    else:
        from harness.backends.serve import ServerConfig, VLLMServer
        cfg = ServerConfig(model=args.model, max_model_len=window, dtype=args.dtype)
        with VLLMServer(cfg, log_path=out / "server.log") as srv:
            mine, theirs, t_ours, t_lm = both(srv.base_url)

    table = []
    print(f"RULER at {args.length} tokens, {args.samples} items per task per side, model {args.model}")
    print(f"{'lm-eval task':18} {'lm-eval':>20} {'longact':>20} {'longact - lm-eval':>26}   prompt tokens (mean) lm-eval / longact")
    for lm_task, our_task in PAIRS.items():
        a = np.array([r["score"] for r in mine[our_task]])
        b = np.array([r["score"] for r in theirs[lm_task]])
        d, lo, hi = diff_ci(a, b)
        ca, cb = bootstrap_ci(a), bootstrap_ci(b)
        row = {"task": lm_task, "ours": our_task, "n_ours": len(a), "n_lm_eval": len(b),
               "lm_eval": float(b.mean()), "lm_eval_ci": cb, "longact": float(a.mean()), "longact_ci": ca,
               "diff": d, "diff_ci": [lo, hi], "beyond_noise": bool(lo > 0 or hi < 0),
               "prompt_tokens_lm_eval": float(np.mean([r["prompt_tokens"] for r in theirs[lm_task]])),
               "prompt_tokens_longact": float(np.mean([r["prompt_tokens"] for r in mine[our_task]]))}
        table.append(row)
        mark = "  *" if row["beyond_noise"] else ""
        print(f"{lm_task:18} {b.mean():6.1f} [{cb[0]:5.1f},{cb[1]:5.1f}] {a.mean():6.1f} [{ca[0]:5.1f},{ca[1]:5.1f}]"
              f" {d:+7.1f} [{lo:+6.1f},{hi:+6.1f}]{mark:3} {row['prompt_tokens_lm_eval']:7.0f} / {row['prompt_tokens_longact']:.0f}")
    print("* the interval of the difference excludes 0")
    print(f"time: longact {t_ours:.0f} s, lm-eval {t_lm:.0f} s (cache hits make reruns faster)")
    (out / "peer_ruler.json").write_text(json.dumps({"model": args.model, "length": args.length,
                                                     "samples": args.samples, "rows": table}, indent=1))
    print(f"wrote {out / 'peer_ruler.json'}")


if __name__ == "__main__":
    main()
