"""Talking to a model: the vLLM server's lifecycle (`serve`), prompt fitting to the window
(`fitting`) and the lm-eval backends that send fitted prompts (`lm`)."""
