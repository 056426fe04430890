"""The evaluation backends, each one named object in a registry.

    backend = get(cfg.backend)
    with backend.connect(cfg, prepared) as launch:      # start (or reach) what answers
        lm = backend.make(cfg, tokenizer, target, specs)  # lm-eval's model, behind which requests go

A `Backend` declares what it needs (`serves`: requests go to an OpenAI-compatible server, started
here or given with --base-url; `swappable`: a running engine can load another checkpoint, which
`longact sweep` needs) and how it starts and stops (`connect`, a context manager that yields the
`Launch` and stops whatever it started on the way out). Adding a backend is one `Backend(...)` in
`BACKENDS` below, with its tests: the flag's choices, the checks and the runner read the registry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from typing import Callable, ContextManager

from harness.errors import UserError
from harness.run.steps import Launch, Prepared, Target


@dataclass(frozen=True)
class Backend:
    name: str
    help: str
    """One line for `longact eval --help`."""
    serves: bool
    """Requests go over HTTP to OpenAI-compatible servers (started here, or given with --base-url);
    False: the model runs in this process, from --model."""
    swappable: bool
    """A running engine can load another checkpoint of the same architecture (`longact sweep`)."""
    connect: Callable[..., ContextManager[Launch]]
    """connect(cfg, prepared) -> context manager yielding the `Launch`; what it started stops on exit."""
    make: Callable[..., object]
    """make(cfg, tokenizer, target, specs) -> the lm-eval model requests go through."""


def launch_config(cfg, devices: str | None = None, cpus: str | None = None, swappable: bool = False):
    """One started server's `ServerConfig`: the run's `serve` section with the run's model,
    window and key, on the given devices/cores."""
    return dataclasses.replace(cfg.serve, model=cfg.model, max_model_len=cfg.max_model_len,
                               api_key=cfg.client.api_key, devices=devices, cpus=cpus, swappable=swappable,
                               extra_args=list(cfg.serve.extra_args))


@contextlib.contextmanager
def _connect_servers(cfg, prep: Prepared):
    """The servers given with --base-url, or `--servers N` vLLM servers started here (stopped on exit)."""
    from harness.backends.serve import VLLMServer, placements, start_all, stop_all

    if cfg.client.base_url:
        yield Launch(list(cfg.client.base_url), prep.remote)
        return
    n = cfg.serve.servers
    per_server = cfg.serve.tensor_parallel_size * cfg.serve.data_parallel_size
    logs = [prep.run_dir / ("server.log" if n == 1 else f"server-{i}.log") for i in range(n)]
    servers = [VLLMServer(launch_config(cfg, devices=d, cpus=c), log_path=log,
                          report_every_s=15.0 if cfg.run.progress else None)
               for (d, c), log in zip(placements(n, per_server), logs)]
    print(f"starting {'vLLM' if n == 1 else f'{n} vLLM servers'} for {cfg.model} (log: "
          f"{', '.join(str(log) for log in logs)}) ...", file=sys.stderr)
    try:
        start_all(servers)
        startup_s = round(max(s.startup_s for s in servers), 2)
        print(f"{'server' if n == 1 else f'{n} servers'} healthy at {', '.join(s.base_url for s in servers)} after "
              f"{startup_s:.1f} s", file=sys.stderr)
        yield Launch([s.base_url for s in servers], [s.info for s in servers], managed=True, startup_s=startup_s)
    finally:
        stop_all(servers)


def _make_server_lm(cfg, tokenizer, target: Target, specs: dict):
    from harness.backends.lm import ServerLM

    c = cfg.client
    return ServerLM(target.base_urls, target.served_names, tokenizer, target.window, task_specs=specs,
                    concurrency=c.concurrency, max_retries=c.max_retries, timeout_s=c.request_timeout_s,
                    api_key=c.api_key, progress=cfg.run.progress, seed=cfg.run.seed, per_request_seed=c.per_request_seed)


@contextlib.contextmanager
def _connect_in_process(cfg, prep: Prepared):
    """Nothing to start: the model loads with the backend (`make`); the window is --max-model-len
    or the tokenizer's."""
    window = cfg.max_model_len or int(getattr(prep.tokenizer, "model_max_length", 0) or 0)
    if not window or window > 10**7:
        raise UserError(f"pass --max-model-len for --backend {cfg.backend} (the tokenizer gives no window)")
    yield Launch(window=int(window))


def _make_hf_lm(cfg, tokenizer, target: Target, specs: dict):
    from harness.backends.hf import FittedHFLM  # torch and transformers: only for this backend

    return FittedHFLM(cfg.model, tokenizer, target.window, specs, seed=cfg.run.seed)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("server", "OpenAI-compatible vLLM server (default)", serves=True, swappable=True,
            connect=_connect_servers, make=_make_server_lm),
    Backend("hf", "lm-eval's in-process transformers", serves=False, swappable=False,
            connect=_connect_in_process, make=_make_hf_lm),
)}


def get(name: str) -> Backend:
    """The backend called `name`; one line naming the known ones otherwise."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{name}': expected {' or '.join(BACKENDS)}")
    return BACKENDS[name]


def flag_help() -> str:
    """The --backend flag's help: each backend and what it is."""
    return "; ".join(f"{b.name}: {b.help}" for b in BACKENDS.values())
