"""lm-eval task definitions (this folder is the `include_path`) and the scorers they share.

Each benchmark is a folder: YAML task configs, `utils.py` for lm-eval's `!function` hooks, and a
`scoring.py` that reproduces the official scorer. Scorers are importable (`tasks.ruler.scoring`)
so the RL trainer's rewards use exactly the functions the evaluation uses.
"""
