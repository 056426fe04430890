"""Small synthetic rows in the official InfiniteBench format, one file per task, for tests and
offline runs:

    python -m tasks.infinitebench.fixtures     # rewrites tasks/infinitebench/data/fixture/*.jsonl

Each row has the official fields (`id, context, input, answer, options`) and the shape its task
expects (a pass key in noise, a JSON object of uuids, a list of numbers, Python functions, ...);
the contents are invented, so nothing here comes from the real dataset.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

from tasks.ruler.sources import NOISE_HAYSTACK

DATA_DIR = Path(__file__).parent / "data" / "fixture"
NAMES = ["ALICE", "BORIS", "CLARA", "DMITRI", "ELENA", "FELIX"]


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _book(rng, n=12):
    people = ["Mara", "Tobin", "Ilse", "Corwin"]
    return " ".join(f"{rng.choice(people)} walked to the {rng.choice(['mill', 'harbor', 'orchard'])} and "
                    f"spoke about the {rng.choice(['storm', 'harvest', 'letter'])}." for _ in range(n))


def rows(task: str, rng: random.Random, n: int = 3) -> list[dict]:
    out = []
    for i in range(n):
        if task == "passkey":
            key = str(rng.randint(10000, 99999))
            hay = [NOISE_HAYSTACK] * 6
            hay.insert(rng.randrange(7), f"The pass key is {key}. Remember it. {key} is the pass key.")
            r = {"context": " ".join(hay), "input": "What is the pass key?", "answer": [key], "options": []}
        elif task == "number_string":
            seq = "".join(str(rng.randint(0, 9)) for _ in range(10))
            hay = [NOISE_HAYSTACK] * 6
            hay.insert(rng.randrange(7), f"The sequence of digits is {seq}. Remember it. {seq} is the sequence of digits.")
            r = {"context": " ".join(hay), "input": "What is the sequence number?", "answer": [seq], "options": []}
        elif task == "kv_retrieval":
            pairs = {_uuid(rng): _uuid(rng) for _ in range(6)}
            key = rng.choice(sorted(pairs))
            r = {"context": json.dumps(pairs), "input": f'Key: "{key}"\nThe value associated with the specified key is: ',
                 "answer": [pairs[key]], "options": []}
        elif task == "longbook_sum_eng":
            r = {"context": _book(rng), "input": "", "answer": ["People walk to places and talk about events."],
                 "options": []}
        elif task == "longbook_choice_eng":
            opts = ["the mill", "the harbor", "the orchard", "the tower"]
            r = {"context": _book(rng), "input": "Where did nobody go?", "answer": ["the tower"], "options": opts}
        elif task == "longbook_qa_eng":
            r = {"context": _book(rng) + " Mara kept the letter.", "input": "Who kept the letter?",
                 "answer": ["Mara"], "options": []}
        elif task == "longbook_qa_chn":
            r = {"context": "小明去了磨坊。" * 8 + "小红保管了那封信。", "input": "谁保管了那封信？", "answer": ["小红"],
                 "options": []}
        elif task == "longdialogue_qa_eng":
            lines = [f"{rng.choice(NAMES)}: I saw the {rng.choice(['ship', 'fire', 'crowd'])}." for _ in range(8)]
            hidden = rng.choice(NAMES)
            lines.insert(4, f"$$MASK$$: I am {hidden.title()}, and I was there.")
            r = {"context": "\n".join(lines), "input": "", "answer": [hidden], "options": []}
        elif task == "math_find":
            nums = [rng.randint(-50, 99) for _ in range(40)]
            r = {"context": str(nums), "input": "The largest number of the list is: ", "answer": [str(max(nums))],
                 "options": []}
        elif task == "math_calc":
            nums = [rng.randint(1, 9) for _ in range(8)]
            expr, vals, acc = str(nums[0]), [nums[0]], nums[0]
            for x in nums[1:]:
                op = rng.choice("+-")
                acc = acc + x if op == "+" else acc - x
                expr += f" {op} {x}"
                vals.append(acc)
            r = {"context": expr, "input": "", "answer": [str(v) for v in vals], "options": []}
        elif task == "code_run":
            a, b = rng.randint(2, 9), rng.randint(1, 20)
            code = "\n".join([f"def func_{k}(x):\n    return x + {k}\n" for k in range(3)] +
                             [f"def func_{i + 10}(x):\n    return x * {a} + {b}\n"])
            arg = rng.randint(-5, 5)
            r = {"context": code, "input": f"Please give me the exact number of the return value of func_{i + 10}({arg})",
                 "answer": [str(arg * a + b)], "options": []}
        elif task == "code_debug":
            opts = ["parse_header", "merge_rows", "render_table", "load_config"]
            bad = rng.choice(opts)
            code = "\n".join(f"def {o}(x):\n    return {'x +' if o == bad else 'x'} \n" for o in opts)
            r = {"context": code, "input": "", "answer": [bad], "options": opts}
        else:
            raise ValueError(task)
        out.append({"id": i, **r})
    return out


def generate() -> dict[str, list[dict]]:
    from tasks.infinitebench.prompts import MAX_NEW_TOKENS

    return {task: rows(task, random.Random(f"ib-{task}")) for task in MAX_NEW_TOKENS}


def serialize(items: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items)


def write() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for task, items in generate().items():
        (DATA_DIR / f"{task}.jsonl").write_text(serialize(items), encoding="utf-8")


if __name__ == "__main__":
    write()
