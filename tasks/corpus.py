"""Long natural text for measurements that need documents rather than benchmark items (the
premise report, `longact mask inspect`): the RULER essay haystack, the one long-text corpus the
project already builds offline. Layers above tasks/ read it here, without naming the benchmark."""

from __future__ import annotations

from pathlib import Path

CORPUS = "the RULER essay haystack"
"""What the corpus is, for reports."""


def long_text_words(path: str | None = None):
    """(whitespace-split words, their Source): the essays at `path`, the built essays, or the
    generated stand-in (tasks/ruler/sources.py)."""
    from tasks.ruler.sources import essay_words

    return essay_words(path)


def check_corpus_path(path: str) -> None:
    """ValueError naming the path when a given corpus does not exist."""
    if not Path(path).expanduser().exists():
        raise ValueError(f"--essays: {path}: corpus not found (a directory of .txt files, a .txt file or "
                         "PaulGrahamEssays.json; `longact data ruler-essays` builds one)")
