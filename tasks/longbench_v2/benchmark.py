"""LongBench v2's surface (see tasks/benchmarks.py): official prediction files, report splits,
the RL prompt set built with the eval task's own prompt builder, and the multiple-choice reward."""

from __future__ import annotations

from pathlib import Path

from tasks.benchmarks import Benchmark, Headline, Need, Option, Plot, Report, Scored, Split, Training, TrainingItem
from tasks.longbench_v2 import scoring
from tasks.longbench_v2.prompts import build_prompt
from tasks.longbench_v2.utils import OFFICIAL_DATASET

FIXTURE = Path(__file__).parent / "data" / "fixture.jsonl"
SPLITS = (Split("Overall"), Split("Easy", "difficulty", "easy"), Split("Hard", "difficulty", "hard"),
          Split("Short", "length", "short"), Split("Medium", "length", "medium"), Split("Long", "length", "long"))
"""`result.py`'s six columns, from the doc fields `difficulty` and `length`."""
REPORT_KEYS = ("overall", "easy", "hard", "short", "medium", "long")
DOC_FIELDS = ("difficulty", "length", "domain", "sub_domain")


def score(path, compensated: bool = False, drop_empty: bool = False) -> Scored:
    """THUDM/LongBench `result.py` on a `pred.py` output file (responses re-extracted)."""
    items = scoring.read_prediction_file(path)
    report = scoring.official_report(items, compensated=compensated, drop_empty=drop_empty)

    def r1(v):
        return "–" if v is None else f"{round(v, 1)}"

    text = ("Overall\tEasy\tHard\tShort\tMedium\tLong\tn\n"
            + "\t".join(r1(report[k]) for k in REPORT_KEYS) + f"\t{report['n']}\n"
            + f"(unparsed answers: {report['n_null']}, empty responses: {report['n_empty']})")
    return Scored(task="longbench_v2", per_item=scoring.item_scores(items, compensated),
                  summary={k: report[k] for k in (*REPORT_KEYS, "n")}, text=text,
                  docs=[{k: it.get(k) for k in DOC_FIELDS} for it in items], breakdown_fields=("difficulty", "length"))


def training_items(path: str = "", n: int = 64, **_) -> list[TrainingItem]:
    """Multiple choice from a LongBench-v2-format JSONL file (default: the fixture), each prompt
    the 0-shot task's own (`build_prompt`, before truncation); reward `longbench_choice`."""
    from tasks.data_io import read_jsonl
    from tasks.longbench_v2.utils import ROW_SPEC

    fields = ("_id", "question", "context", "choice_A", "choice_B", "choice_C", "choice_D", "answer")
    spec = {k: ROW_SPEC[k] for k in fields}  # what the prompt and the reward read
    rows = read_jsonl(path or FIXTURE, spec, id_field="_id")
    return [TrainingItem(r["_id"], build_prompt(r, "0shot"), [r["answer"]], "longbench_choice") for r in rows[:n]]


def choice_reward(completion: str, answers: list) -> float:
    """The eval score of one item (official extraction; unparsed = wrong), as a fraction."""
    return scoring.item_score(scoring.extract_answer(completion), answers[0])


BENCHMARK = Benchmark(
    name="longbench_v2",
    title="LongBench v2",
    score=score,
    options=(Option("compensated", "unparsed answers count 0.25 (official option)", flag=True, default=False),
             Option("drop_empty", "leave empty responses out of the denominator, as pred.py does by not writing them",
                    flag=True, default=False)),
    report=Report(splits=SPLITS, plots=(Plot("LongBench v2 splits (95% bootstrap intervals)", "splits", "longbench_v2",
                                              "LongBench v2 accuracy (%)"),),
                  # the leaderboard's columns (longbench2.github.io): w/o CoT in the overview, w/ CoT in the section
                  headline=Headline("splits", "longbench_v2", target_label="w/o CoT", order=1,
                                    variants=(("longbench_v2_cot", "w/ CoT"), ("longbench_v2_nocontext", "no context")))),
    training=Training("longbench_mc", training_items),
    rewards={"longbench_choice": choice_reward},
    descriptions={
        "longbench_v2": "503 four-choice questions on documents of 8k to 2M words, 0-shot, official prompt and "
                        "answer extraction (chat)",
        "longbench_v2_cot": "the same with chain of thought: a reasoning pass, then the official answer prompt",
        "longbench_v2_nocontext": "the same questions without their documents (what the model answers from memory)",
    },
    needs=(Need(f"the official data from the Hugging Face Hub ({OFFICIAL_DATASET})", "data_path",
                "/data/LongBench-v2/data.json",
                how=f"get data.json once (huggingface-cli download {OFFICIAL_DATASET} --repo-type dataset --local-dir DIR)"),),
    score_examples=("results/Qwen3-8B.jsonl", "results/Qwen3-8B_cot.jsonl --json --compensated"),
)
