"""Shared fixtures: the tiny model (built once per session) and one vLLM server on it.

Tests never download anything: the model is built offline, data comes from tasks/*/data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every vLLM server the tests start (here and through `longact eval`) runs eager: on the tiny
# model torch.compile lengthens each start and does not speed up decoding (docs/evaluating.md).
os.environ.setdefault("LONGACT_SERVER_ARGS", "--enforce-eager")
# `make test` runs two pytest-xdist workers: they share the machine's cores (each its own torch
# threads and its own session server's core), or torch in both would oversubscribe them.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... under xdist
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // XDIST_WORKERS)))

ROOT = Path(__file__).resolve().parent.parent
SERVER_WINDOW = 2048


def offline_metadata(folder: Path) -> dict:
    """Offline metadata for a benchmark folder: its fixture (official data needs the network) or
    its `data/test_metadata.json` (paths in it are relative to the folder)."""
    import json

    fixture = folder / "data" / "fixture.jsonl"
    if fixture.exists():
        return {"data_path": str(fixture)}
    meta = folder / "data" / "test_metadata.json"
    if not meta.exists():
        return {}
    md = {k: v for k, v in json.loads(meta.read_text()).items() if not k.startswith("_")}
    return {k: str(folder / v) if k.endswith(("_path", "_dir")) else v for k, v in md.items()}


# Every benchmark's tasks run offline on the shipped fixtures against the tiny model's
# 2048-token server (InfiniteBench's official budgets, up to 30,000 tokens, do not fit it).
FIXTURE_RUNS = {
    "tiny": {"tasks": ["tiny"], "metadata": {}},
    "longbench_v2": {"tasks": ["longbench_v2", "longbench_v2_cot", "longbench_v2_nocontext"],
                     "metadata": offline_metadata(ROOT / "tasks" / "longbench_v2")},
    "infinitebench": {"tasks": ["infinitebench"], "metadata": offline_metadata(ROOT / "tasks" / "infinitebench"),
                      "gen_kwargs": {"max_gen_toks": 64}},
    "ruler": {"tasks": ["ruler"], "metadata": offline_metadata(ROOT / "tasks" / "ruler")},
}


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Built benchmark data (RULER) goes to a per-session cache, never the user's."""
    old = os.environ.get("LONGACT_CACHE")
    os.environ["LONGACT_CACHE"] = str(tmp_path_factory.mktemp("longact-cache"))
    yield
    if old is None:
        os.environ.pop("LONGACT_CACHE", None)
    else:
        os.environ["LONGACT_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from longact.tiny.model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-qwen3")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def alive(pids: list[int]) -> list[int]:
    """The processes of `pids` still running (a zombie has exited; its parent has not reaped it)."""
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def _uses_the_session_server(item) -> bool:
    return "vllm_server" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    """Modules that use the session's server run after those that do not (each module stays in
    one piece, so its module fixtures are built once): the server boots while they run."""
    server_modules = {item.module for item in items if _uses_the_session_server(item)}
    items.sort(key=lambda item: item.module in server_modules)


@pytest.fixture(scope="session", autouse=True)
def _session_server_launch(request, tmp_path_factory):
    """Launch the session's server at the first test if any collected test uses it, and return
    at once; `vllm_server` waits for it to be healthy (about a minute on 2 cores, mostly imports
    in vLLM's three processes) when the first test that needs it comes."""
    if not any(_uses_the_session_server(item) for item in request.session.items):
        yield None
        return
    from harness.backends.serve import ServerConfig, VLLMServer, split_cpus

    model = request.getfixturevalue("tiny_model_dir")
    log = tmp_path_factory.mktemp("server") / "server.log"
    cpus = split_cpus(XDIST_WORKERS)[int(XDIST_WORKER[2:])] if XDIST_WORKER else None
    server = VLLMServer(ServerConfig(model=str(model), max_model_len=SERVER_WINDOW, cpus=cpus), log_path=log)
    server.launch()
    yield server
    pids = server.pids()
    server.stop()
    deadline = time.monotonic() + 5  # stop() leaves no vLLM process behind (an error at teardown if it does)
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pids), f"vLLM processes outlived VLLMServer.stop(): {alive(pids)}"


@pytest.fixture(scope="session")
def vllm_server(_session_server_launch):
    """One real vLLM server on the tiny model for the whole session (launched early, see above)."""
    return _session_server_launch.wait_ready()


@pytest.fixture
def stubs():
    """Stub OpenAI servers (tests/stub_openai.py), made on demand (`stubs(respond=...)`), all closed after."""
    from tests.stub_openai import StubServer

    made = []

    def make(**kw):
        made.append(StubServer(**kw))
        return made[-1]

    yield make
    for s in made:
        s.close()
