"""LongAct evaluation harness: serving, lm-eval runner, truncation, provenance, results, tables."""

__version__ = "0.1.0"
