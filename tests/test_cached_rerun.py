"""A rerun answered entirely from the request cache writes the same samples rows as the run that
filled it (apart from `from_cache`), for every benchmark's tasks, two-pass LongBench v2 CoT
included: a cached answer carries its request record (prompt hash and tokens, truncation,
completion tokens, finish reason, first-pass output) instead of being fitted again."""

import json

import pytest

from harness.records.io import load_run
from harness.run.config import ClientConfig, EvalConfig, RunConfig
from harness.run.runner import run_eval
from tests.conftest import FIXTURE_RUNS

pytestmark = pytest.mark.server


def _rows(run_dir, task):
    rec = load_run(run_dir)
    return [json.loads(line) for line in (run_dir / rec.tasks[task].samples_file).read_text().splitlines()]


@pytest.mark.parametrize("bench", sorted(FIXTURE_RUNS))
def test_full_cached_rerun_equals_the_first_run(bench, vllm_server, tiny_model_dir, tmp_path):
    spec = FIXTURE_RUNS[bench]
    cfg = EvalConfig(tokenizer=str(tiny_model_dir), client=ClientConfig(base_url=vllm_server.base_url),
                     run=RunConfig(tasks=list(spec["tasks"]), limit=3, output_dir=str(tmp_path), progress=False,
                                   task_metadata=spec["metadata"], gen_kwargs=dict(spec.get("gen_kwargs", {}))))
    first_dir = run_eval(cfg)
    second_dir = run_eval(cfg)
    first, second = load_run(first_dir), load_run(second_dir)
    assert second.requests["sent"] == 0 and second.requests["cached"] == second.requests["total"] > 0
    assert set(first.tasks) == set(second.tasks)
    for task in first.tasks:
        fresh, cached = _rows(first_dir, task), _rows(second_dir, task)
        assert fresh and all(r["from_cache"] for r in cached) and not any(r["from_cache"] for r in fresh)
        assert [{**r, "from_cache": None} for r in cached] == [{**r, "from_cache": None} for r in fresh], task
        assert all(r["completion_tokens"] and r["finish_reason"] for r in cached), task
        a, b = first.tasks[task], second.tasks[task]
        assert (a.metrics, a.prompt_tokens, a.completion_tokens, a.n_truncated) == \
               (b.metrics, b.prompt_tokens, b.completion_tokens, b.n_truncated), task
    if bench == "longbench_v2":
        assert all(r["first_response"] is not None for r in _rows(second_dir, "longbench_v2_cot"))
