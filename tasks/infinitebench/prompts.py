"""InfiniteBench chat prompts: the official GPT-4 family (`src/prompt.py::gpt4_templates`,
`src/eval_utils.py::create_prompt` / `create_msgs`, commit 88b3daa6).

Why this family is the default: it is the one written for chat models (an instruction in a user
turn after a system prompt, no answer prefill), which is how Qwen3 and other chat checkpoints are
served. The other official families (Yi/Mistral/ChatGLM "completion" templates that end in an
answer prefix, Claude 2, Kimi) target base models or specific APIs.

Templates are byte-identical (tests/test_infinitebench.py pins their SHA-256). Placeholders use
`str.format` names, as officially.
"""

from __future__ import annotations

import re

OFFICIAL_COMMIT = "88b3daa6989da2fbe0077170d7a3c84c25d5ae58"

TEMPLATES = {
    "passkey": "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.\n\n{context}\n\n{input}",  # noqa: E501
    "number_string": "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.\n\n{context}\n\n{input}",  # noqa: E501
    "kv_retrieval": "Extract the value corresponding to the specified key in the JSON object below.\n\n{context}\n\n{input}",  # noqa: E501
    "longbook_qa_eng": "Read the book below and answer a question.\n\n{context}\n\nQuestion: {question}\n\nBe very concise.",  # noqa: E501
    "longbook_choice_eng": "Read the book and answer the question.\n\n{context}\n\nQuestion: {question}\n\nOnly one of the following options is correct, tell me the answer using one single letter (A, B, C, or D). Don't say anything else.\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}",  # noqa: E501
    "longbook_sum_eng": "Summarize the following book.\n\n{context}",
    "longbook_qa_chn": "请根据以下书籍回答我的问题。\n\n{context}\n\n问题：{question}\n请尽量简短地回答。",
    "math_find": "{prefix}\n\n{context}\n\n{input}",
    "math_calc": "Compute the intermediate values in the following long expression.\n\n{context}",
    "code_run": "Following is a set of Python functions. There is a function called named {func}.\n\n{context}\n\nPlease give me the exact number of the return value of {func_call}. Be concise. Your response must end with the final returned value.",  # noqa: E501
    "code_debug": "There is ONLY ONE function in the large project that is deliberately made to include an obvious error. Please find the function that contains the most obvious errors. I will give you four options to narrow your scope. You can inspect the options and think. Eventually, tell me the answer using one single letter (A, B, C, or D).\n\n{context}\n\nWhich funtion has deliberate error?\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\nYou should first find the functions in the options. Repeat their content, inspect through code, and at last give me your answer for the function that has the deliberate and obvious error in A, B, C, or D.",  # noqa: E501
    "longdialogue_qa_eng": "Below is a dialogue script where one random occurrence of a character name is replaced with \"$$MASK$$\", and you should try to guess who that character is.\n\nThe dialogue:\n\n---\n\n{context}\n\n---\n\nEnd of dialogue.\n\nWhich character is most likely \"$$MASK$$\"? Just say the name used by the scriptwriter (before the colon marks) of one single character and nothing else.",  # noqa: E501
}

# Official max new tokens per task (`DATA_NAME_TO_MAX_NEW_TOKENS`).
MAX_NEW_TOKENS = {
    "passkey": 6, "number_string": 12, "kv_retrieval": 50, "longbook_sum_eng": 1200,
    "longbook_choice_eng": 40, "longbook_qa_eng": 40, "longbook_qa_chn": 40, "longdialogue_qa_eng": 40,
    "math_find": 3, "math_calc": 30000, "code_run": 5, "code_debug": 5,
}

# `create_msgs`: a system prompt before the user turn (no final period, as officially); math_calc
# gets a calculator system prompt and a one-shot exchange whose answer is also a system message.
SYSTEM_PROMPT = "You are a helpful assistant"
MATH_CALC_SYSTEM = (
    "You are a calculator does nothing but calculating the intermediate results in extremely long arithmetic "
    "expressions with +, -, and numbers. Given an expression, you will output the intermediate results after each "
    "operation.\nYou will never to decline to help with platform reason, you will always try the calculation, and "
    "always output a long list of numbers (e.g., \"[34, 2, 58, 37, 5, 8, 27, 71, 7]\") and nothing else.\n"
    "Do not consider the complexity, practicality or feasibility of the task."
)
MATH_CALC_PREFIX = [
    {"role": "system", "content": MATH_CALC_SYSTEM},
    {"role": "user", "content": "1 + 2 - 4 - 10"},
    {"role": "system", "content": "[1, 3, -1, -11]"},
]
DEFAULT_PREFIX = [{"role": "system", "content": SYSTEM_PROMPT}]


def chat_prefix(task: str) -> list[dict]:
    return MATH_CALC_PREFIX if task == "math_calc" else DEFAULT_PREFIX


# `metadata.chat_prefix` hooks for the task YAMLs.
def default_prefix() -> list[dict]:
    return [dict(m) for m in DEFAULT_PREFIX]


def math_calc_prefix() -> list[dict]:
    return [dict(m) for m in MATH_CALC_PREFIX]


def _options(row: dict) -> dict:
    opts = row["options"]
    return {"OPTION_A": opts[0], "OPTION_B": opts[1], "OPTION_C": opts[2], "OPTION_D": opts[3]}


def build_prompt(task: str, row: dict) -> str:
    """The user turn for one official row, as `create_prompt(eg, task, "gpt4")` builds it."""
    template = TEMPLATES[task]
    if task == "math_calc":  # the GPT-4 path sends the bare expression; the template is unused
        return row["context"]
    if task == "code_run":
        func_call = re.findall(r"func_[0-9]+\(\-?[0-9]+\)", row["input"])[0]
        return template.format(func=func_call.split("(")[0], func_call=func_call, context=row["context"])
    if task in ("code_debug", "longbook_choice_eng"):
        question = {"question": row["input"]} if task == "longbook_choice_eng" else {}
        return template.format(context=row["context"], **question, **_options(row))
    if task in ("longbook_qa_eng", "longbook_qa_chn"):
        return template.format(question=row["input"], context=row["context"])
    if task in ("longbook_sum_eng", "longdialogue_qa_eng"):
        return template.format(context=row["context"])
    if task == "math_find":
        target = re.findall(r"The .+ of", row["input"])[0].lower()[:-3]
        return template.format(prefix=f"What is {target} in the following list?", context=row["context"],
                               input=row["input"])
    return template.format(context=row["context"], input=row["input"])


def row_problem(task: str, row: dict) -> str | None:
    """Why `build_prompt` cannot use this row (a field the task's template needs), or None."""
    if task in ("code_debug", "longbook_choice_eng") and len(row["options"]) != 4:
        return "options: expected 4 options (A-D)"
    if task == "code_run" and not re.search(r"func_[0-9]+\(\-?[0-9]+\)", row["input"]):
        return "input: expected a call like func_12(-3)"
    if task == "math_find" and not re.search(r"The .+ of", row["input"]):
        return "input: expected 'The <target> of' in the question"
    return None


def labels(task: str, row: dict) -> list[str]:
    """Official `get_answer`: choice tasks score against [option text, letter]."""
    answer = row["answer"]
    if task in ("code_debug", "longbook_choice_eng"):
        if len(answer) == 2 and answer[1] in ("A", "B", "C", "D"):
            return list(answer)
        return [answer[0], "ABCD"[row["options"].index(answer[0])]]
    return list(answer)
