"""Shared fixtures: the tiny model (built once per session) and one vLLM server on it.

Tests never download anything: the model is built offline, data comes from tasks/*/data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every vLLM server the tests start (here and through `longact eval`) runs eager: on the tiny
# model torch.compile lengthens each start and does not speed up decoding (docs/evaluating.md).
os.environ.setdefault("LONGACT_SERVER_ARGS", "--enforce-eager")

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


@pytest.fixture(scope="session")
def vllm_server(tiny_model_dir, tmp_path_factory):
    """One real vLLM server for the whole session (startup takes about a minute on 2 cores)."""
    from harness.backends.serve import ServerConfig, VLLMServer

    log = tmp_path_factory.mktemp("server") / "server.log"
    server = VLLMServer(ServerConfig(model=str(tiny_model_dir), max_model_len=SERVER_WINDOW), log_path=log)
    server.start()
    yield server
    server.stop()


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
