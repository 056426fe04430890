"""Offline inputs of the RULER generators: word lists, essay haystack, QA datasets, sentences.

Every source returns its content plus a `Source` record (what it is, where it came from, a
SHA-256 of the content) that ends up in each document and in run.json, so two runs built from
different essays or word lists are never mistaken for the same benchmark.

* Words: `wonderwords` (the official niah keys and CWE words) and `english-words` (web2 list) for
  CWE lengths that need more distinct words than wonderwords has (the official repo ships its
  own large list for the same purpose).
* Essays: a local corpus (a directory of .txt files, or the official `PaulGrahamEssays.json`),
  built with `longact data ruler-essays` where the network allows; otherwise a deterministic
  generated corpus, marked as such.
* QA: SQuAD v2 dev and HotpotQA dev (distractor) from local files in their official JSON formats,
  or through `datasets` with the official ids.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.data_io import DataError, json_error_text

SQUAD_DATASET = ("rajpurkar/squad_v2", None, "validation")
HOTPOTQA_DATASET = ("hotpotqa/hotpot_qa", "distractor", "validation")
SQUAD_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json"
HOTPOTQA_URL = "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"
ESSAY_URL_LIST = ("https://raw.githubusercontent.com/NVIDIA/RULER/"
                  "c3f5e3b4f87f97e048793bb510a3a6b19a46bf3a/scripts/data/synthetic/json/PaulGrahamEssays_URLs.txt")
NOISE_HAYSTACK = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
GENERATED_ESSAYS = "generated-fallback"
"""Start of the essay source's `origin` when the haystack is the generated stand-in."""


@dataclass(frozen=True)
class Source:
    kind: str
    origin: str
    sha256: str
    size: int

    def to_dict(self) -> dict:
        return asdict(self)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_root() -> Path:
    """Where built RULER data and essays live: $LONGACT_CACHE/ruler (default ~/.cache/longact)."""
    return Path(os.environ.get("LONGACT_CACHE", Path.home() / ".cache" / "longact")) / "ruler"


# Words -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def wonderwords_lists() -> dict[str, list[str]]:
    try:
        from wonderwords import random_word
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise RuntimeError("RULER needs the `wonderwords` package (pip install wonderwords==3.0.1)") from e
    return {kind: random_word._get_words_from_text_file(f"{kind}list.txt") for kind in ("noun", "adjective", "verb")}


@functools.lru_cache(maxsize=None)
def niah_word_parts() -> tuple[list[str], list[str], Source]:
    """Sorted adjectives and nouns; a niah word key is one adjective-noun pair.

    The official script materialises and sorts all 6.2M pairs (~10 s); drawing the adjective and
    the noun separately is the same uniform choice over pairs without that cost.
    """
    w = wonderwords_lists()
    adjs, nouns = sorted(set(w["adjective"])), sorted(set(w["noun"]))
    digest = _sha("\n".join(adjs) + "\x00" + "\n".join(nouns))
    return adjs, nouns, Source("words", "wonderwords adjective-noun pairs", digest, len(adjs) * len(nouns))


def random_niah_word(rng: random.Random) -> str:
    adjs, nouns, _ = niah_word_parts()
    return f"{rng.choice(adjs)}-{rng.choice(nouns)}"


@functools.lru_cache(maxsize=None)
def cwe_words(seed: int) -> tuple[list[str], list[str], Source]:
    """(wonderwords nouns+adjectives+verbs shuffled by the task seed, large fallback list)."""
    w = wonderwords_lists()
    small = sorted(set(w["noun"] + w["adjective"] + w["verb"]))
    random.Random(seed).shuffle(small)
    from english_words import get_english_words_set

    large = sorted(get_english_words_set(["web2"], lower=True, alpha=True))
    digest = _sha("\n".join(small) + "\x00" + "\n".join(large))
    return small, large, Source("words", "wonderwords nouns/adjectives/verbs + english-words web2", digest,
                                len(small) + len(large))


# Sentences -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str, splitter: str = "regex") -> list[str]:
    """Split essay text into sentences for needle insertion at sentence boundaries.

    The official generators use nltk's punkt model, which needs a data download; `regex` (split
    after . ! ? followed by whitespace) is the offline default and `nltk` is available where punkt
    is installed. The choice is recorded with the documents.
    """
    if splitter == "nltk":
        try:
            import nltk

            nltk.data.find("tokenizers/punkt_tab")
        except (ImportError, LookupError) as e:
            raise RuntimeError("sentence_splitter 'nltk' needs nltk with punkt_tab data "
                               "(python -m nltk.downloader punkt_tab); use 'regex' offline") from e
        return nltk.sent_tokenize(text)
    if splitter != "regex":
        raise ValueError(f"sentence_splitter must be 'regex' or 'nltk', got {splitter!r}")
    return [s for s in _SENTENCE_END.split(text) if s]


# Essays ----------------------------------------------------------------------------------

def _read_essay_path(path: Path) -> str:
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(path, None, None, "no .txt essays in this directory (build it with `longact data ruler-essays`)")
        return "".join(f.read_text(encoding="utf-8") for f in files)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(path, e.lineno, None, f"invalid JSON ({json_error_text(e)})") from e
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise DataError(path, None, "text", "expected {\"text\": \"...\"} as the official PaulGrahamEssays.json")
        return data["text"]
    return path.read_text(encoding="utf-8")


def generated_essay_corpus(num_words: int = 120_000, seed: int = 0) -> str:
    """A deterministic stand-in for the essays: plain English-like sentences from word lists.

    Used only when no essay corpus is available offline; documents built on it say so.
    """
    w = wonderwords_lists()
    rng = random.Random(seed)
    nouns = [n for n in w["noun"] if n.isalpha() and n.islower()]
    adjs = [a for a in w["adjective"] if a.isalpha()]
    verbs = [v for v in w["verb"] if v.isalpha()]
    patterns = (
        "The {a} {n} {v}s the {n2}.", "Every {n} wants a {a} {n2}.", "A {n} can {v} without a {n2}.",
        "Most people {v} the {a} {n} before the {n2}.", "Why would a {a} {n} {v} at all?",
        "Nobody knew the {n} was so {a}.", "It is {a} to {v} a {n} when the {n2} is {a2}.",
    )
    out, count = [], 0
    while count < num_words:
        s = rng.choice(patterns).format(a=rng.choice(adjs), a2=rng.choice(adjs), n=rng.choice(nouns),
                                        n2=rng.choice(nouns), v=rng.choice(verbs))
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def check_essay_path(essay_path: str) -> Path:
    """A corpus path the user gave, or a DataError naming it and saying what a corpus is."""
    path = Path(essay_path).expanduser()
    if not path.exists():
        raise DataError(path, None, None, "essay corpus not found (a directory of .txt files, a .txt file, "
                                          "or PaulGrahamEssays.json; build one with `longact data ruler-essays`)")
    return path


@functools.lru_cache(maxsize=8)
def essay_words(essay_path: str | None = None) -> tuple[list[str], Source]:
    """Whitespace-split essay words (the official haystack unit) and where they came from."""
    path = check_essay_path(essay_path) if essay_path else cache_root() / "essays"
    if path.exists():
        text = _read_essay_path(path)
        if not text.strip():
            raise DataError(path, None, None, "the essay corpus is empty")
        return re.sub(r"\s+", " ", text).split(" "), Source("essay", str(path), _sha(text), len(text))
    text = generated_essay_corpus()
    return text.split(" "), Source("essay", f"{GENERATED_ESSAYS}-v1 (no essay corpus found offline)", _sha(text), len(text))


# QA datasets -----------------------------------------------------------------------------

@dataclass
class QAData:
    questions: list[dict]
    """{'query', 'outputs' (gold answers), 'context' (doc ids), 'more_context' (doc ids)}"""
    docs: list[str]
    source: Source


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(path, None, None, "file not found") from e
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, None, f"invalid JSON ({json_error_text(e)})") from e


def _index_docs(all_docs: list[str]) -> tuple[list[str], dict[str, int]]:
    docs = sorted(set(all_docs))
    return docs, {d: i for i, d in enumerate(docs)}


def parse_squad(data, origin: str) -> tuple[list[dict], list[str]]:
    """Official SQuAD v2 JSON (`data[].paragraphs[].qas[]`): answerable questions, in file order."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(origin, None, "data", "expected the SQuAD v2 JSON layout {\"data\": [{\"paragraphs\": ...}]}")
    try:
        docs, ids = _index_docs([p["context"] for d in data["data"] for p in d["paragraphs"]])
        questions = []
        for art_i, d in enumerate(data["data"]):
            article = [ids[p["context"]] for p in d["paragraphs"]]
            for p in d["paragraphs"]:
                own = ids[p["context"]]
                for q in p["qas"]:
                    if q.get("is_impossible"):
                        continue
                    answers = [a["text"] for a in q["answers"]]
                    if not answers:
                        raise DataError(origin, None, f"data[{art_i}].qas[{q.get('id')}].answers",
                                        "an answerable question without answers")
                    questions.append({"query": q["question"], "outputs": answers, "context": [own],
                                      "more_context": [i for i in article if i != own]})
    except (KeyError, TypeError) as e:
        raise DataError(origin, None, str(e).strip("'"), "missing or malformed in the SQuAD v2 layout") from e
    return questions, docs


def parse_hotpotqa(data, origin: str) -> tuple[list[dict], list[str]]:
    """Official HotpotQA dev JSON (a list of {question, answer, context: [[title, [sentences]]]})."""
    if not isinstance(data, list):
        raise DataError(origin, None, None, "expected the HotpotQA JSON layout: a list of questions")
    try:
        def doc(t, sents):
            return f"{t}\n{''.join(sents)}"

        docs, ids = _index_docs([doc(t, p) for d in data for t, p in d["context"]])
        questions = [{"query": d["question"], "outputs": [d["answer"]],
                      "context": [ids[doc(t, p)] for t, p in d["context"]], "more_context": []} for d in data]
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(origin, None, None, f"malformed HotpotQA item ({e})") from e
    return questions, docs


def _from_hub(dataset: str) -> list | dict:
    """The official datasets through `datasets`, converted to the official JSON layouts."""
    import datasets

    repo, config, split = SQUAD_DATASET if dataset == "squad" else HOTPOTQA_DATASET
    url = SQUAD_URL if dataset == "squad" else HOTPOTQA_URL
    key = "squad_path" if dataset == "squad" else "hotpotqa_path"
    try:
        ds = datasets.load_dataset(repo, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline machines raise several kinds
        raise DataError(repo, None, None,
                        f"cannot load the official dataset ({type(e).__name__}). Offline? Download {url} once and "
                        f"pass --metadata '{{\"{key}\": \"/path/file.json\"}}'") from e
    if dataset == "squad":
        articles: dict[str, dict] = {}
        for r in ds:
            art = articles.setdefault(r["title"], {"paragraphs": {}})
            para = art["paragraphs"].setdefault(r["context"], {"context": r["context"], "qas": []})
            para["qas"].append({"id": r["id"], "question": r["question"], "is_impossible": not r["answers"]["text"],
                                "answers": [{"text": t} for t in r["answers"]["text"]]})
        return {"data": [{"paragraphs": list(a["paragraphs"].values())} for a in articles.values()]}
    return [{"question": r["question"], "answer": r["answer"],
             "context": [[t, s] for t, s in zip(r["context"]["title"], r["context"]["sentences"])]} for r in ds]


@functools.lru_cache(maxsize=4)
def qa_data(dataset: str, path: str | None = None) -> QAData:
    if dataset not in ("squad", "hotpotqa"):
        raise ValueError(f"unknown RULER QA dataset {dataset!r}")
    if path:
        p = Path(path).expanduser()
        raw, origin = _load_json(p), str(p)
    else:
        raw = _from_hub(dataset)
        origin = "/".join(x for x in (SQUAD_DATASET if dataset == "squad" else HOTPOTQA_DATASET) if x)
    questions, docs = (parse_squad if dataset == "squad" else parse_hotpotqa)(raw, origin)
    if not questions:
        raise DataError(origin, None, None, "no answerable questions")
    digest = _sha(json.dumps(raw, sort_keys=True, ensure_ascii=False))
    return QAData(questions, docs, Source(dataset, origin, digest, len(questions)))
