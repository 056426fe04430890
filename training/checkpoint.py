"""Trainer checkpoints: `<out_dir>/step-N/`, written to a temp dir and renamed (atomic).

Holds HF safetensors + tokenizer (vLLM serves the folder as it is), the LongAct mask under
`longact_mask/` (a subfolder: vLLM loads every top-level *.safetensors file as weights) and
`trainer_state.pt`: optimizer state, every rank's torch RNG state, Python's RNG state, the step
and the data position. Resume loads it with `weights_only=True` (tensors and plain data only).
Under torchrun the gathering is collective and rank 0 writes; the run dir must be shared.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import torch

from tasks import trainer_layout
from training import parallel

MASK_SUBDIR = "longact_mask"
STATE_FILE = "trainer_state.pt"


def save(out_dir: Path, step: int, model, tok, mask, opt, data_pos: int, d: parallel.Dist) -> Path:
    final = trainer_layout.step_dir(out_dir, step)
    weights = parallel.model_state(model, d)  # collective under fsdp: every rank takes part
    optim = parallel.optimizer_state(model, opt, d)
    rngs = d.gather(torch.get_rng_state())
    if d.main:
        tmp = out_dir / f".step-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, state_dict=weights, safe_serialization=True)
        tok.save_pretrained(tmp)
        mask.save(tmp / MASK_SUBDIR)
        torch.save({"step": step, "data_pos": data_pos, "optimizer": optim, "torch_rng": rngs,
                    "python_rng": random.getstate(), "world": d.world}, tmp / STATE_FILE)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    d.barrier()  # nobody reads step-N before it exists
    return final


def saved(out_dir: Path) -> list[Path]:
    """The run's complete checkpoints (with their trainer state), in step order."""
    return trainer_layout.step_dirs(out_dir, complete=lambda p: (p / STATE_FILE).exists())


def latest(out_dir: Path) -> Path | None:
    steps = saved(out_dir)
    return steps[-1] if steps else None


def load_state(ckpt: Path, model, opt, d: parallel.Dist, log=print) -> tuple[int, int]:
    """Restore optimizer and RNG states; returns (step, data position)."""
    state = torch.load(ckpt / STATE_FILE, weights_only=True)
    parallel.load_optimizer_state(model, opt, state["optimizer"], d)
    rngs = state["torch_rng"]
    rngs = rngs if isinstance(rngs, list) else [rngs]  # files from single-process runs
    if len(rngs) == d.world:
        torch.set_rng_state(rngs[d.rank])
    else:  # rollouts are seeded per prompt; only Clip-Cov's token draw uses this RNG
        log(f"{ckpt}: saved with {len(rngs)} process(es), resuming with {d.world}; RNG reseeded per rank")
    random.setstate(state["python_rng"])
    return state["step"], state["data_pos"]
