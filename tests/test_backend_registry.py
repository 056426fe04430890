"""Evaluation backends come from one registry (harness/run/backends.py): the --backend flag, the
checks, the runner and the sweep read what each backend declares, not its name."""

import contextlib
import dataclasses

import pytest

from harness.errors import UserError
from harness.run import backends
from harness.run.config import ClientConfig, EvalConfig, RunConfig, config_from_dict
from harness.run.steps import Launch, Target


def test_the_backend_flag_offers_exactly_the_registered_backends():
    from longact.cli import build_parser

    parser = build_parser()
    for name in backends.BACKENDS:
        assert parser.parse_args(["eval", "--backend", name]).cfg__top__backend == name
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--backend", "nope"])
    assert all(f"{b.name}: {b.help}" in backends.flag_help() for b in backends.BACKENDS.values())


def test_an_unknown_backend_is_refused_with_the_known_ones_named(tiny_model_dir):
    from harness.run.validate import check_config

    with pytest.raises(UserError, match="unknown backend 'nope': expected server or hf"):
        check_config(EvalConfig(model=str(tiny_model_dir), backend="nope"))


@pytest.fixture
def toy_backend(monkeypatch):
    """A backend added to the registry (a stand-in: this tests the wiring, not a model)."""
    calls = []

    @contextlib.contextmanager
    def connect(cfg, prep):
        calls.append("start")
        yield Launch(window=64)
        calls.append("stop")

    toy = backends.Backend("toy", "a test backend", serves=False, swappable=False, connect=connect,
                           make=lambda cfg, tok, target, specs: ("toy-lm", target.window))
    monkeypatch.setitem(backends.BACKENDS, "toy", toy)
    return calls


def test_a_registered_backend_is_what_the_runner_starts_stops_and_uses(toy_backend):
    from harness.run.runner import connect, make_backend

    cfg = EvalConfig(model="m", backend="toy")
    with connect(cfg, prep=None) as launch:
        assert toy_backend == ["start"] and launch.window == 64
    assert toy_backend == ["start", "stop"]
    assert make_backend(cfg, None, Target(64), {}) == ("toy-lm", 64)


def test_checks_read_what_a_backend_declares(toy_backend, tiny_model_dir, tmp_path):
    from harness.run.sweep import sweep_configs
    from harness.run.validate import check_config

    with pytest.raises(UserError, match="--backend toy needs --model PATH"):
        check_config(EvalConfig(backend="toy", client=ClientConfig(base_url=["http://127.0.0.1:1"])))
    cfg = EvalConfig(model=str(tiny_model_dir), backend="toy")
    cfg.serve.servers = 2
    with pytest.raises(UserError, match="--servers starts vLLM servers.*--backend toy"):
        check_config(cfg)
    with pytest.raises(UserError, match="--backend toy cannot do"):
        sweep_configs(EvalConfig(backend="toy", run=RunConfig(output_dir=str(tmp_path))), {"a": str(tiny_model_dir)})


def test_a_started_server_is_the_runs_serve_section_with_its_model_window_and_key():
    """One server config: the run's `serve` section is the launch's, filled with the run's facts."""
    cfg = EvalConfig(model="m", max_model_len=512, client=ClientConfig(api_key="k"))
    cfg.serve.dtype, cfg.serve.extra_args = "float32", ["--enforce-eager"]
    launch = backends.launch_config(cfg, devices="1", cpus="0-1", swappable=True)
    assert (launch.model, launch.max_model_len, launch.api_key, launch.devices, launch.cpus, launch.swappable) == \
        ("m", 512, "k", "1", "0-1", True)
    assert dataclasses.replace(launch, model=None, max_model_len=None, api_key=None, devices=None, cpus=None,
                               swappable=False) == cfg.serve
    assert launch.command(8000)[-1] == "--enforce-eager" and cfg.serve.model is None
    assert config_from_dict(cfg.to_dict()) == cfg  # config.json reads back
