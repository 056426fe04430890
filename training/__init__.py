"""LongAct trainer (masked-gradient GRPO / DAPO / Clip-Cov / KL-Cov); see training/README.md.

Checkpoints it writes are plain HF safetensors directories that `longact eval` serves as-is.
"""
