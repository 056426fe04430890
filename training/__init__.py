"""LongAct trainer (masked-gradient GRPO / DAPO / Clip-Cov / KL-Cov).

Skeleton: the mask, losses, rollout, rewards and the training loop land with the trainer issue.
Checkpoints it writes are plain HF safetensors directories that `longact eval` serves as-is.
"""
