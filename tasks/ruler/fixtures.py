"""Small QA files in the official SQuAD v2 / HotpotQA JSON layouts, for tests and offline demos.

    python -m tasks.ruler.fixtures     # rewrites tasks/ruler/data/{squad,hotpotqa}_fixture.json

The facts are synthetic (invented items and cities), so nothing here comes from the real datasets;
the layouts (answerable and unanswerable questions, several paragraphs per article, distractor
paragraphs per HotpotQA question) are what the loaders must handle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
COLOURS = ["amber", "teal", "crimson", "olive", "violet", "ochre", "slate", "coral", "indigo", "sienna"]
CITIES = ["Norvale", "Quenford", "Barrowmere", "Ostlund", "Carrow Bay", "Vell", "Tamsin Ford", "Lirra",
          "Hobbe", "Castrel", "Meadowgate", "Ushant"]


def squad_fixture(seed: int = 0) -> dict:
    rng = random.Random(seed)
    articles = []
    for a in range(8):
        paragraphs = []
        for p in range(3):
            item, colour = f"artefact {a}{p}", rng.choice(COLOURS)
            context = (f"The museum catalogue lists {item} among the pieces of hall {a}. "
                       f"Restorers noted that {item} is painted {colour} and was repaired twice. "
                       f"Visitors usually reach hall {a} through the east entrance.")
            paragraphs.append({"context": context, "qas": [
                {"id": f"s{a}{p}", "question": f"What colour is {item} painted?", "is_impossible": False,
                 "answers": [{"text": colour, "answer_start": context.index(colour)},
                             {"text": f"painted {colour}", "answer_start": context.index(f"painted {colour}")}]},
                {"id": f"u{a}{p}", "question": f"Who donated {item}?", "is_impossible": True, "answers": []},
            ]})
        articles.append({"title": f"Hall_{a}", "paragraphs": paragraphs})
    return {"version": "v2.0", "data": articles}


def hotpotqa_fixture(seed: int = 0) -> list:
    rng = random.Random(seed)
    items = []
    for i in range(20):
        city = rng.choice(CITIES)
        festival, founder = f"the Lantern Fair {i}", f"Ada Quill {i}"
        context = [
            [f"Lantern Fair {i}", [f"{festival.capitalize()} is an autumn festival founded by {founder}. ",
                                   "It draws crowds every October."]],
            [f"Ada Quill {i}", [f"{founder} was an engineer born in {city}. ", "She designed canal locks."]],
        ] + [[f"Filler {i}-{j}", [f"Filler page {i}-{j} describes an unrelated river. ", "Nothing else happens."]]
             for j in range(3)]
        rng.shuffle(context)
        items.append({"_id": f"h{i}", "question": f"In which city was the founder of {festival} born?",
                      "answer": city, "type": "bridge", "level": "medium", "context": context,
                      "supporting_facts": [[f"Lantern Fair {i}", 0], [f"Ada Quill {i}", 0]]})
    return items


def write() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    (DATA_DIR / "squad_fixture.json").write_text(json.dumps(squad_fixture(), indent=1) + "\n", encoding="utf-8")
    (DATA_DIR / "hotpotqa_fixture.json").write_text(json.dumps(hotpotqa_fixture(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write()
