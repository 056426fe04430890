"""LongBench v2 prompt templates, byte-identical to THUDM/LongBench `prompts/0shot*.txt`.

Placeholders: $DOC$ context, $Q$ question, $C_A$..$C_D$ choices, $COT$ the first-pass reasoning.
The CoT templates contain a right single quotation mark (U+2019) in "Let\u2019s"; keep it.
tests/test_longbench_v2.py pins their SHA-256 so an accidental edit fails loudly.
"""

ZERO_SHOT = (
    "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n"
    "(D) $C_D$\n\nFormat your response as follows: \"The correct answer is (insert answer here)\"."
)

COT = (
    "Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n"
    "(D) $C_D$\n\nLet\u2019s think step by step:"
)

COT_ANSWER = (
    "Please read the following text and answer the questions below.\n\nThe text is too long and "
    "omitted here.\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n"
    "(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nLet\u2019s think step by step: $COT$\n\nBased on the above, "
    "what is the single, most likely answer choice? Format your response as follows: "
    "\"The correct answer is (insert answer here)\"."
)

NO_CONTEXT = (
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n"
    "(D) $C_D$\n\nWhat is the single, most likely answer choice? Format your response as follows: "
    "\"The correct answer is (insert answer here)\"."
)

TEMPLATES = {"0shot": ZERO_SHOT, "cot": COT, "cot_answer": COT_ANSWER, "nocontext": NO_CONTEXT}
VARIANTS = ("0shot", "cot", "nocontext")
"""The first-pass variants, one task each (`cot_answer` is the second CoT pass)."""


def fill(template: str, doc: dict, cot: str | None = None) -> str:
    """Fill a template the way `pred.py` does: stripped fields, plain string replacement."""
    out = (template.replace("$DOC$", doc["context"].strip()).replace("$Q$", doc["question"].strip())
           .replace("$C_A$", doc["choice_A"].strip()).replace("$C_B$", doc["choice_B"].strip())
           .replace("$C_C$", doc["choice_C"].strip()).replace("$C_D$", doc["choice_D"].strip()))
    return out.replace("$COT$", cot) if cot is not None else out


def build_prompt(doc: dict, variant: str = "0shot") -> str:
    """The user turn a task variant sends for `doc` before truncation (`pred.py`'s filled
    template); the eval tasks and the RL prompt set both build prompts here."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown LongBench v2 variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return fill(TEMPLATES[variant], doc)
