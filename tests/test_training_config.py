"""Config mistakes are refused by name before any model loads: the mappings inside the trainer's
config (`algo.loss_kwargs`, `vllm`) included. Only validation errors are user errors: a bug
inside the trainer keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from longact.cli import main
from tasks.errors import ConfigError, UserError
from training import losses as L
from training.config import load_config

CONFIG = Path(__file__).resolve().parent.parent / "training" / "configs" / "tiny-cpu.yaml"
SKILLED = Path(__file__).resolve().parent.parent / "assets" / "tiny-qwen3-skilled"


def test_a_misspelled_loss_kwarg_is_refused_with_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"override 'algo.loss_kwargs=\{clip_ration: 1e-3\}': algo.loss_kwargs: "
                                          r"unknown key 'clip_ration' for algo.policy_loss=clip_cov \(did you mean "
                                          r"'clip_ratio'\?\); it accepts: clip_ratio, cov_lb, cov_ub"):
        load_config(str(CONFIG), ["model=x", "algo.policy_loss=clip_cov", "algo.loss_kwargs={clip_ration: 1e-3}"])
    # keys of another loss: switching the loss without its kwargs no longer trains with them ignored
    with pytest.raises(ConfigError, match=r"unknown key 'clip_ratio' for algo.policy_loss=ppo_clip.*accepts: none"):
        load_config(str(CONFIG), ["model=x", "algo.loss_kwargs={clip_ratio: 0.1}"])


def test_loss_kwargs_that_other_settings_own_are_refused():
    with pytest.raises(ConfigError, match=r"'eps_high' is set by algo.eps_high, not algo.loss_kwargs"):
        load_config(str(CONFIG), ["model=x", "algo.policy_loss=clip_cov", "algo.loss_kwargs={eps_high: 0.3}"])
    with pytest.raises(ConfigError, match=r"'pick' is chosen by the trainer"):
        load_config(str(CONFIG), ["model=x", "algo.policy_loss=kl_cov", "algo.loss_kwargs={pick: 1}"])
    with pytest.raises(ConfigError, match=r"kl_cov_ratio expects a number, got 'lots'"):
        load_config(str(CONFIG), ["model=x", "algo.policy_loss=kl_cov", "algo.loss_kwargs={kl_cov_ratio: lots}"])


def test_loss_kwargs_given_as_text_numbers_are_numbers(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("model: m\nalgo: {policy_loss: clip_cov, loss_kwargs: {clip_ratio: 1e-3}}\n")  # YAML 1.1: a string
    assert load_config(str(preset)).algo.loss_kwargs == {"clip_ratio": 1e-3}


def test_each_policy_loss_accepts_its_own_parameters():
    assert {name: sorted(L.loss_kwargs_accepted(name)) for name in L.POLICY_LOSSES} == {
        "ppo_clip": [], "clip_cov": ["clip_ratio", "cov_lb", "cov_ub"], "kl_cov": ["kl_coef", "kl_cov_ratio"]}


def test_dry_run_and_train_refuse_before_any_model_loads(capsys, tmp_path):
    bad = ["algo.policy_loss=clip_cov", "algo.loss_kwargs={clip_ration: 1e-3}"]
    for verb in (["train", "--dry-run"], ["train"], ["experiment"]):
        out = tmp_path / verb[0]
        code = main([*verb, "--config", str(CONFIG), f"model={SKILLED}", f"out_dir={out}", *bad])
        err = capsys.readouterr().err
        assert code == 2 and "unknown key 'clip_ration'" in err and "Traceback" not in err, err
        assert not out.exists(), verb  # refused before the run started


@pytest.mark.parametrize("overrides,needle", [
    (["vllm={gpu_memory_utilization: 0.5}"], "are read only with backend=vllm (backend is 'hf')"),
    (["backend=vllm", "vllm={seed: 3}"], "vllm.seed: the trainer sets it from seed"),
    (["data.source=nope"], "data.source: unknown 'nope'"),
    (["betas=[0.9]"], "betas must be two numbers in [0, 1)"),
])
def test_other_mappings_and_values_are_checked_at_load(overrides, needle):
    with pytest.raises(ConfigError) as e:
        load_config(str(CONFIG), ["model=x", *overrides])
    assert needle in str(e.value)


@pytest.mark.slow  # imports vLLM to learn its engine arguments
def test_an_unknown_vllm_engine_argument_is_refused():
    pytest.importorskip("vllm")
    with pytest.raises(ConfigError, match=r"vllm: unknown engine argument\(s\) 'gpu_memory_utilisation' \(did you mean "
                                          r"'gpu_memory_utilization'\?\)"):
        load_config(str(CONFIG), ["model=x", "backend=vllm", "vllm={gpu_memory_utilisation: 0.4}"])
    assert load_config(str(CONFIG), ["model=x", "backend=vllm", "vllm={gpu_memory_utilization: 0.4}"]).vllm


def test_a_bug_inside_the_experiment_keeps_its_traceback(monkeypatch, tmp_path, capsys):
    import training.experiment

    def broken(*_, **__):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(training.experiment, "run_experiment", broken)
    with pytest.raises(ValueError, match="an internal invariant broke"):
        main(["experiment", "--config", str(CONFIG), f"model={SKILLED}", f"out_dir={tmp_path}"])

    def refused(*_, **__):
        raise UserError("--controls: unknown 'nope'")

    monkeypatch.setattr(training.experiment, "run_experiment", refused)
    assert main(["experiment", "--config", str(CONFIG), f"model={SKILLED}", f"out_dir={tmp_path}"]) == 2
    assert "error: --controls: unknown 'nope'" in capsys.readouterr().err


def test_a_missing_torch_names_the_extra(monkeypatch, capsys):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find(name, *a))
    assert main(["train", "--config", str(CONFIG), "--dry-run", f"model={SKILLED}"]) == 2
    err = capsys.readouterr().err
    assert "need torch" in err and ".[cpu]" in err and ".[gpu]" in err
