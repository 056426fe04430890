"""RULER's task definitions: templates, answer prefixes, budgets and the 13 task configurations.

Ported from NVIDIA/RULER at commit c3f5e3b4 (2026-07-22), which includes the 2025 generator
fixes (binary-search sizing, FWE/VT budgets, CWE word fallback). Templates and answer prefixes are
byte-identical to `scripts/data/synthetic/constants.py`; tests/test_ruler.py pins their SHA-256.
The per-task arguments follow `scripts/synthetic.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OFFICIAL_COMMIT = "c3f5e3b4f87f97e048793bb510a3a6b19a46bf3a"
VERSION = "1.1"
DEFAULT_LENGTHS = (4096, 8192, 16384, 32768, 65536, 131072)
DEFAULT_NUM_SAMPLES = 500
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Template:
    text: str
    answer_prefix: str
    tokens_to_generate: int


TEMPLATES = {
    "niah": Template(
        "Some special magic {type_needle_v} are hidden within the following text. Make sure to "
        "memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all "
        "the special magic {type_needle_v} for {query} mentioned in the provided text?",
        " The special magic {type_needle_v} for {query} mentioned in the provided text are",
        128,
    ),
    "variable_tracking": Template(
        "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
        "{context}\nQuestion: Find all variables that are assigned the value {query} in the text above.",
        " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables "
        "are assigned the value {query}, they are: ",
        30,
    ),
    "common_words_extraction": Template(
        "Below is a numbered list of words. In these words, some appear more often than others. "
        "Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common "
        "words in the above list?",
        " Answer: The top 10 words that appear most often in the list are:",
        120,
    ),
    "freq_words_extraction": Template(
        "Read the following coded text and track the frequency of each coded word. Find the three "
        "most frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. "
        "Please ignore the dots '....'. What are the three most frequently appeared words in the above "
        "coded text?",
        " Answer: According to the coded text above, the three most frequently appeared words are:",
        50,
    ),
    "qa": Template(
        "Answer the question based on the given documents. Only give me the answer and do not output "
        "any other words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question "
        "based on the given documents. Only give me the answer and do not output any other words.\n\n"
        "Question: {query}",
        " Answer:",
        32,
    ),
}

# Official scorer per generator kind (scripts/eval/synthetic/constants.py).
METRIC_OF_KIND = {
    "niah": "string_match_all",
    "variable_tracking": "string_match_all",
    "common_words_extraction": "string_match_all",
    "freq_words_extraction": "string_match_all",
    "qa": "string_match_part",
}

@dataclass(frozen=True)
class TaskConfig:
    name: str
    """Our task name without the `ruler_` prefix (official names; qa_1/qa_2 are named by dataset)."""
    kind: str
    args: dict = field(default_factory=dict)

    @property
    def template(self) -> Template:
        return TEMPLATES[self.kind]


def _niah(name, haystack, k, v, num_k=1, num_v=1, num_q=1):
    return TaskConfig(name, "niah", {"type_haystack": haystack, "type_needle_k": k, "type_needle_v": v,
                                     "num_needle_k": num_k, "num_needle_v": num_v, "num_needle_q": num_q})


TASKS: dict[str, TaskConfig] = {t.name: t for t in (
    _niah("niah_single_1", "noise", "words", "numbers"),
    _niah("niah_single_2", "essay", "words", "numbers"),
    _niah("niah_single_3", "essay", "words", "uuids"),
    _niah("niah_multikey_1", "essay", "words", "numbers", num_k=4),
    _niah("niah_multikey_2", "needle", "words", "numbers"),
    _niah("niah_multikey_3", "needle", "uuids", "uuids"),
    _niah("niah_multivalue", "essay", "words", "numbers", num_v=4),
    _niah("niah_multiquery", "essay", "words", "numbers", num_q=4),
    TaskConfig("vt", "variable_tracking", {"type_haystack": "noise", "num_chains": 1, "num_hops": 4}),
    TaskConfig("cwe", "common_words_extraction", {"freq_cw": 30, "freq_ucw": 3, "num_cw": 10, "num_fewshot": 1}),
    TaskConfig("fwe", "freq_words_extraction", {"alpha": 2.0, "coded_wordlen": 6}),
    TaskConfig("qa_squad", "qa", {"dataset": "squad"}),
    TaskConfig("qa_hotpot", "qa", {"dataset": "hotpotqa"}),
)}
