"""lm-eval task definitions (this folder is the `include_path`) and the scorers they share.

Each benchmark is a folder: YAML task configs, `utils.py` for lm-eval's `!function` hooks, a
`scoring.py` that reproduces the official scorer, and `benchmark.py`, the one surface the rest of
the project reads (`tasks/benchmarks.py`: rescoring official prediction files, report columns and
plots, the RL prompt sets and rewards), so nothing outside tasks/ names a benchmark.

The modules beside the folders are not tasks: they are the bottom layer that the harness, the
trainer and the benchmarks share (errors, data_io, tokens, thinking, trainer_layout,
model_config); tasks/README.md lists them.
"""
