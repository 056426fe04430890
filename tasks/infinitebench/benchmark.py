"""InfiniteBench's surface (see tasks/benchmarks.py): official prediction files per task, and the
English QA F1 scorer as the reward of free-form QA training sets."""

from __future__ import annotations

from tasks.benchmarks import Benchmark, Option, Scored
from tasks.infinitebench.scoring import SCORERS, qa_f1, score_file


def score(path, task: str, model_family: str = "gpt4") -> Scored:
    """OpenBMB/InfiniteBench `compute_scores.py` for one task's prediction file."""
    result = score_file(path, task, model_family)
    return Scored(task=f"infinitebench_{task}", per_item=result["per_item"],
                  summary={"score": result["score"], "n": result["n"]},
                  text=f"{task}: {result['score']:.2f} (n={result['n']})")


BENCHMARK = Benchmark(
    name="infinitebench",
    title="InfiniteBench",
    score=score,
    options=(Option("task", "task name (passkey, kv_retrieval, longbook_qa_eng, ...)", choices=tuple(SCORERS)),
             Option("model_family", "prompt family of the predictions; math_calc drops the first number for gpt4 "
                                    "(default: gpt4)", default="gpt4")),
    rewards={"qa_f1": qa_f1},
)
