"""Long natural text for measurements that need documents rather than benchmark items (the
premise report, `longact mask inspect`): the RULER essay haystack, the one long-text corpus the
project already builds offline. Layers above tasks/ read it here, without naming the benchmark."""

from __future__ import annotations

CORPUS = "the RULER essay haystack"
"""What the corpus is, for reports."""


def long_text_words(path: str | None = None):
    """(whitespace-split words, their Source): the essays at `path`, the built essays, or the
    generated stand-in (tasks/ruler/sources.py)."""
    from tasks.ruler.sources import essay_words

    return essay_words(path)


def check_corpus_path(path: str) -> None:
    """A DataError (a ValueError) naming `path` when a given corpus does not exist."""
    from tasks.ruler.sources import check_essay_path

    check_essay_path(path)
