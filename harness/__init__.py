"""LongAct evaluation harness: backends (serving, fitting), run, records and reports.

Layers: `harness` imports `tasks` and never `training` or the app (`longact`)."""

__version__ = "0.1.0"
