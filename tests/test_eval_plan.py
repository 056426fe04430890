"""`longact eval --plan` (harness/run/plan.py): KV cache, sequences that fit and wall time from a
model's config.json, without a server."""

import json
from pathlib import Path

import pytest

from harness.backends.serve import ServerConfig
from harness.run import plan as P
from harness.run.config import EvalConfig
from longact.cli import main

ROOT = Path(__file__).resolve().parent.parent
QWEN3_8B = json.loads((ROOT / "tasks/model_configs/Qwen/Qwen3-8B/config.json").read_text())


def _cfg(window=131_072, tp=8, **serve):
    return EvalConfig(model="Qwen/Qwen3-8B", max_model_len=window, serve=ServerConfig(tensor_parallel_size=tp, **serve))


def test_shape_arithmetic():
    s = P.Shape.of(QWEN3_8B)
    assert s.parameters == 8_190_427_136  # 8.19B; the norms' 0.3M weights are left out
    assert s.kv_bytes_per_token == 147_456  # 144 KiB: 2 x 36 layers x 8 KV heads x 128 x 2 bytes


def test_ruler_128k_on_eight_gpus_against_the_published_figure():
    """NVIDIA/RULER issue #79: ~2 h per 128k length for an 8B model, 13 tasks x 500 samples, TP=8.
    At 128k the causal attention is ~3/4 of the prefill FLOPs; the plan at 40% of peak says ~3.9 h,
    and 2 h would take ~78% of peak: the published figure is a fast setup, not a loose estimate."""
    prompts = {"ruler_128k": [131_072 - 128] * (13 * 500)}
    p = P.plan_eval(_cfg(), "h100", 0.4, prompts)
    assert p.seconds("ruler_128k") / 3600 == pytest.approx(3.92, abs=0.01)
    assert p.kv_per_sequence_gib == pytest.approx(131_072 * 147_456 / 8 / 2**30)  # 2.25 GiB per GPU
    assert p.sequences == pytest.approx(30.1, abs=0.05)  # (0.9 x 79.6 GiB - 1.9 weights / 8 - 2) / 2.25 GiB
    assert "3.92 h" in P.render(p)


def test_utilization_comes_from_the_server_args():
    assert P.plan_eval(_cfg(extra_args=["--gpu-memory-utilization=0.5"]), prompts={}).utilization == 0.5
    assert P.plan_eval(_cfg(extra_args=["--gpu-memory-utilization", "0.6"]), prompts={}).utilization == 0.6
    assert P.plan_eval(_cfg(), prompts={}).utilization == 0.9


def test_a_window_that_fits_no_sequence_names_the_knobs():
    p = P.plan_eval(_cfg(window=1_000_000, tp=1), "h100", prompts={})
    with pytest.raises(P.UserError, match=r"does not fit .* GiB short\); a larger --tensor-parallel-size"):
        P.refuse_unless_fits(p)


def test_cli_bad_input_exit_2(capsys):
    assert main(["eval", "--model", "Qwen/Qwen3-8B", "--tasks", "tiny", "--plan"]) == 2
    assert "--plan needs --max-model-len" in capsys.readouterr().err
    assert main(["eval", "--model", "NoSuchOrg/NoSuchModel", "--max-model-len", "4096", "--plan"]) == 2
    assert "tasks/model_configs/NoSuchOrg/NoSuchModel/config.json" in capsys.readouterr().err
    assert main(["eval", "--model", "Qwen/Qwen3-8B", "--max-model-len", "4096", "--tensor-parallel-size", "3",
                 "--plan"]) == 2
    assert "8 KV heads" in capsys.readouterr().err
