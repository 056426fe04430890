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

ROOT = Path(__file__).resolve().parent.parent
SERVER_WINDOW = 2048


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
