"""Store a rescored official prediction file as a run, so published numbers sit in the same tables.

    longact score ruler preds/niah_single_1.jsonl --task niah_single_1 --save-run results/ --model-name Qwen3-8B

The run directory looks like one of ours (run.json + samples_<task>.jsonl with per-item scores in
percent) and says where it came from: `serving.backend = "imported"`, `imported_from` = the
file, and a config hash derived from the file's SHA-256, so `longact compare` never pairs it with
a run of ours silently (the prompts and serving were not ours), while the leaderboard lists it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.records import provenance
from harness.records.aggregate import breakdown, mean_metric
from harness.records.io import atomic_write_jsonl, create_run_dir, utc_now, write_run
from harness.records.lm_eval_format import write_lm_eval_results
from harness.records.schema import CodeInfo, ModelInfo, RunRecord, SampleRecord, ServingInfo, TaskResult


def save_imported_run(output_dir: str, task: str, scores: list[float], source: str, model_name: str,
                      docs: list[dict] | None = None, breakdown_fields: tuple[str, ...] = ()) -> Path:
    """`scores`: per-item official scores as fractions (0..1); stored in percent."""
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    run_id, run_dir = create_run_dir(output_dir)
    rows = [SampleRecord(doc_id=i, prompt_hash=None, prompt_tokens=None, truncated=None, response="", filtered="",
                         target=None, metrics={"score": 100.0 * s}, doc=(docs or [{}] * len(scores))[i]).to_dict()
            for i, s in enumerate(scores)]
    atomic_write_jsonl(run_dir / f"samples_{task}.jsonl", rows)
    overall = mean_metric([r["metrics"]["score"] for r in rows])
    commit, dirty = provenance.git_info()
    record = RunRecord(
        run_id=run_id, status="complete",
        model=ModelInfo(path=model_name, weights_sha256=None, tokenizer_sha256=None, tokenizer=""),
        serving=ServingInfo(backend="imported"),
        code=CodeInfo(harness_version=provenance.harness_version(), git_commit=commit, git_dirty=dirty),
        started_at=utc_now(), finished_at=utc_now(), imported_from=str(Path(source).resolve()),
        tasks={task: TaskResult(version="official", config_hash=f"imported-{digest}", dataset_fingerprint=digest,
                                endpoint="unknown", n_samples=overall.n,
                                metrics={"score": overall},
                                breakdown=breakdown(rows, list(breakdown_fields), ["score"]),
                                samples_file=f"samples_{task}.jsonl")},
    )
    write_run(run_dir, record)
    write_lm_eval_results(run_dir, record)  # like every finished run, readable by lm-eval's tooling too
    return run_dir
