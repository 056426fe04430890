"""InfiniteBench's surface (see tasks/benchmarks.py): official prediction files per task, and the
English QA F1 scorer as the reward of free-form QA training sets."""

from __future__ import annotations

from tasks.benchmarks import Benchmark, Headline, Need, Option, Report, Scored
from tasks.infinitebench.scoring import SCORERS, qa_f1, score_file
from tasks.infinitebench.utils import OFFICIAL_DATASET


def score(path, task: str, model_family: str = "gpt4") -> Scored:
    """OpenBMB/InfiniteBench `compute_scores.py` for one task's prediction file."""
    result = score_file(path, task, model_family)
    return Scored(task=f"infinitebench_{task}", per_item=result["per_item"],
                  summary={"score": result["score"], "n": result["n"]},
                  text=f"{task}: {result['score']:.2f} (n={result['n']})")


TASK_LABELS = {
    "infinitebench_passkey": "Retrieve.PassKey", "infinitebench_number_string": "Retrieve.Number",
    "infinitebench_kv_retrieval": "Retrieve.KV", "infinitebench_longbook_sum_eng": "En.Sum",
    "infinitebench_longbook_qa_eng": "En.QA", "infinitebench_longbook_choice_eng": "En.MC",
    "infinitebench_longdialogue_qa_eng": "En.Dia", "infinitebench_longbook_qa_chn": "Zh.QA",
    "infinitebench_code_debug": "Code.Debug", "infinitebench_code_run": "Code.Run",
    "infinitebench_math_calc": "Math.Calc", "infinitebench_math_find": "Math.Find",
}
"""The paper's task names, in its table's order."""

BENCHMARK = Benchmark(
    name="infinitebench",
    title="InfiniteBench",
    score=score,
    options=(Option("task", "task name (passkey, kv_retrieval, longbook_qa_eng, ...)", choices=tuple(SCORERS)),
             Option("model_family", "prompt family of the predictions; math_calc drops the first number for gpt4 "
                                    "(default: gpt4)", default="gpt4")),
    # The paper's table: one column per task (its names, its order), plus the average over tasks.
    report=Report(headline=Headline("task_mean", "infinitebench", details=True, labels=TASK_LABELS, order=3)),
    rewards={"qa_f1": qa_f1},
    descriptions={
        "infinitebench": "12 tasks beyond 100k tokens, official GPT-4-family chat prompts; mean of the task scores",
        "infinitebench_passkey": "find the passkey hidden in repeated filler text",
        "infinitebench_number_string": "find the long number hidden in repeated filler text",
        "infinitebench_kv_retrieval": "give the value of one key of a large JSON object of UUIDs",
        "infinitebench_longbook_sum_eng": "summarise a novel (ROUGE-Lsum)",
        "infinitebench_longbook_choice_eng": "multiple-choice questions on a novel",
        "infinitebench_longbook_qa_eng": "free-form questions on a novel (F1)",
        "infinitebench_longbook_qa_chn": "free-form questions on a Chinese novel (character F1)",
        "infinitebench_longdialogue_qa_eng": "name the masked speaker in a script",
        "infinitebench_math_find": "find the largest, smallest or median number of a long list",
        "infinitebench_math_calc": "give every intermediate result of a long sum (up to 30,000 new tokens)",
        "infinitebench_code_run": "give the value a chain of calls returns in a long program",
        "infinitebench_code_debug": "pick the function with the planted bug in a large repository (multiple choice)",
    },
    needs=(Need(f"the official data from the Hugging Face Hub ({OFFICIAL_DATASET})", "data_dir", "/data/InfiniteBench",
                how=f"get the <task>.jsonl files once (huggingface-cli download {OFFICIAL_DATASET} --repo-type dataset "
                    "--local-dir DIR)"),),
    score_examples=("results/gpt4/preds_kv_retrieval.jsonl --task kv_retrieval --json",),
)
