"""Run lm-eval tasks against a served (or in-process) model and write a run directory.

    from harness.run.runner import EvalConfig, run_eval
    run_dir = run_eval(EvalConfig(model="models/tiny-qwen3", tasks=["tiny"]))

Steps: resolve tasks (TaskManager with tasks/ as include_path) -> start vLLM unless a base URL is
given -> build the backend (prompts fitted to the window) -> lm-eval's `evaluate` behind its
request cache -> per-task samples and `run.json` with provenance -> stop the server.

Resume: answers are cached as they arrive in `<output_dir>/.cache/` under a key of (model
content, tokenizer, window, backend) (see harness/run/cache.py); rerunning the same command reads
finished answers from there and sends only the missing requests. Failed requests are never
cached, so a rerun retries exactly those.

Tasks receive, through lm-eval's task metadata, the evaluated `tokenizer` and `max_model_len`
(plus anything given with `--metadata`), so benchmarks can apply their official truncation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import IncompleteRunError, UserError
from harness.records import provenance
from harness.records.aggregate import breakdown, data_sources, group_breakdown, parse_metrics
from harness.records.io import atomic_write_json, atomic_write_jsonl, create_run_dir, utc_now, write_run
from harness.records.schema import CodeInfo, ModelInfo, RunRecord, ServingInfo, TaskResult
from harness.run.tasks import check_task_names, check_task_versions, dataset_fingerprint, task_config_hash, task_manager

# Long fields dropped from the `doc` copy kept in samples files (the prompt hash identifies them).
LONG_DOC_FIELDS = ("context", "input_text", "_prompt")
log = logging.getLogger("longact")


@dataclass
class EvalConfig:
    """Everything `longact eval` needs; written to `<run_dir>/config.json`."""

    model: str | None = None
    tasks: list[str] = field(default_factory=lambda: ["tiny"])
    backend: str = "server"
    base_url: str | None = None
    tokenizer: str | None = None
    max_model_len: int | None = None
    limit: float | None = None
    output_dir: str = "results"
    run_id: str | None = None
    concurrency: int = 8
    max_retries: int = 4
    request_timeout_s: float = 600.0
    seed: int = 1234
    gen_kwargs: dict = field(default_factory=dict)
    task_metadata: dict = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    server_args: list[str] = field(default_factory=list)
    api_key: str | None = None
    startup_timeout_s: float = 600.0
    per_request_seed: bool = False
    mode: str = "official"
    """`official` or `reasoning` (harness/run/modes.py)."""
    samples_per_item: int = 1
    """k outputs per item; metrics become mean@k (and pass@k for 0/100 metrics)."""
    reasoning_budget: int | None = None
    """Output tokens in reasoning mode (default: each task's `reasoning_max_gen_toks`)."""
    use_cache: bool = True
    progress: bool = True
    command: list[str] = field(default_factory=list)


def check_model_path(model: str) -> None:
    p = Path(model)
    looks_local = model.startswith((".", "/", "~")) or p.exists() or model.count("/") != 1
    if not looks_local:
        return  # a hub id; resolved by vLLM / transformers where the network allows
    if not p.exists():
        raise UserError(f"model path {model} does not exist. Build the default with "
                        "`longact model build-tiny`, or pass a directory holding config.json and weights.")
    if not (p / "config.json").is_file():
        raise UserError(f"{model} is not a model directory: no config.json inside")


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds here
        raise UserError(f"cannot load a tokenizer from {path}: {e}. Pass --tokenizer PATH.") from e


def cache_path(output_dir: str, model: ModelInfo, window: int, backend: str) -> str:
    key = provenance.json_hash([model.path if model.weights_sha256 is None else model.weights_sha256,
                                model.tokenizer_sha256, window, backend])[:20]
    return str(Path(output_dir) / ".cache" / f"requests-{key}")


# Result assembly -------------------------------------------------------------------------

def _strip_doc(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in LONG_DOC_FIELDS and not (isinstance(v, str) and len(v) > 2000)}


def _sample_rows(samples: list[dict], records: dict, metric_names: list[str]) -> list[dict]:
    rows = []
    for s in samples:
        rec = records.get(s["doc_id"])
        resp = s.get("resps", [[""]])
        first = resp[0][0] if resp and resp[0] else ""
        filtered = s.get("filtered_resps", [None])
        all_resps = resp[0] if resp and isinstance(resp[0], list) else []
        rows.append({
            "doc_id": s["doc_id"],
            "prompt_hash": rec.prompt_hash if rec else None,
            "prompt_tokens": rec.prompt_tokens if rec else None,
            "truncated": rec.truncated if rec else None,
            "response": first,
            "filtered": filtered[0] if isinstance(filtered, list) and filtered else filtered,
            "target": s.get("target"),
            "metrics": {m: s[m] for m in metric_names if m in s},
            "error": rec.error if rec else None,
            "from_cache": rec.from_cache if rec else False,
            "completion_tokens": rec.completion_tokens if rec else None,
            "finish_reason": rec.finish_reason if rec else None,
            "first_response": rec.first_response if rec else None,
            "responses": list(all_resps) if len(all_resps) > 1 else None,
            "doc": _strip_doc(s.get("doc", {})),
        })
    return rows


def _apply_mode(loaded: dict, cfg: EvalConfig, tokenizer) -> None:
    from harness.run.modes import MODES, apply_to_task

    if cfg.mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)} (got {cfg.mode!r})")
    if int(cfg.samples_per_item) < 1:
        raise UserError(f"--samples-per-item must be >= 1 (got {cfg.samples_per_item})")

    opened = False
    if cfg.mode == "reasoning":
        try:  # templates that open the thinking block in the prompt (outputs then lack <think>)
            rendered = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                                     add_generation_prompt=True, enable_thinking=True)
            opened = rendered.rstrip().endswith("<think>")
        except Exception as e:  # noqa: BLE001 - tokenizers without a chat template
            raise UserError(f"reasoning mode needs a chat template in the tokenizer ({e})") from e
    for name, task in loaded["tasks"].items():
        if cfg.mode != "official" and not callable(task.config.process_results):
            raise UserError(f"task {name} scores with lm-eval metrics, not a process_results hook; "
                            "reasoning mode needs the hook to remove thinking first")
        apply_to_task(task, cfg.mode, max(1, int(cfg.samples_per_item)), cfg.reasoning_budget, opened)


def _build_backend(cfg: EvalConfig, base_url: str | None, served_model: str, tokenizer, window: int, specs):
    from harness.backends.lm import ServerLM, make_hf_lm

    if cfg.backend == "hf":
        return make_hf_lm(cfg.model, tokenizer, window, specs, seed=cfg.seed)
    return ServerLM(base_url, served_model, tokenizer, window, task_specs=specs,
                    concurrency=cfg.concurrency, max_retries=cfg.max_retries,
                    timeout_s=cfg.request_timeout_s, api_key=cfg.api_key, progress=cfg.progress,
                    seed=cfg.seed, per_request_seed=cfg.per_request_seed)


def _evaluate(lm, loaded, cfg: EvalConfig, cache_db: str | None):
    """lm-eval's simple_evaluate minus model construction, keeping the task objects we need."""
    import numpy as np
    from lm_eval.evaluator import evaluate

    from harness.run.cache import ResumableLM

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    try:
        import torch

        torch.manual_seed(cfg.seed)
    except ImportError:
        pass
    for task in loaded["tasks"].values():
        if task.get_config("output_type") == "generate_until" and cfg.gen_kwargs:
            task.set_config(key="generation_kwargs", value=dict(cfg.gen_kwargs), update=True)
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=cfg.seed)
    wrapped = ResumableLM(lm, cache_db + ".sqlite") if cache_db else lm
    try:
        results = evaluate(lm=wrapped, task_dict=loaded, limit=cfg.limit, log_samples=True,
                           bootstrap_iters=1000, verbosity="WARNING")
    finally:
        if cache_db:
            wrapped.close()
    return results, wrapped


def run_eval(cfg: EvalConfig) -> Path:
    """Evaluate and write `<output_dir>/<run_id>/`; returns the run directory.

    Raises IncompleteRunError (after writing everything) when some requests failed.
    """
    from harness.backends.serve import ServerConfig, VLLMServer, check_same_tokenizer, server_info, stop_on_sigterm

    t0 = time.monotonic()
    started = utc_now()
    # lm-eval warns once per custom-dataset task about --metadata; our CLI has its own flag.
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    if cfg.backend not in ("server", "hf"):
        raise UserError(f"unknown backend '{cfg.backend}': expected server or hf")
    if cfg.backend == "hf" and not cfg.model:
        raise UserError("--backend hf needs --model PATH")
    if not cfg.model and not cfg.base_url:
        raise UserError("pass --model PATH (the harness serves it) or --base-url URL (a running server)")
    if cfg.model:
        check_model_path(cfg.model)
    remote = server_info(cfg.base_url, cfg.api_key) if cfg.base_url else None

    tm = task_manager(cfg.task_metadata)
    check_task_names(tm, cfg.tasks)
    run_id, run_dir = create_run_dir(cfg.output_dir, cfg.run_id)
    atomic_write_json(run_dir / "config.json", asdict(cfg))

    model_name = cfg.model or remote["model"]
    tok_source = cfg.tokenizer or cfg.model or remote["model"]
    if not Path(tok_source).exists() and cfg.tokenizer is None and cfg.model is None:
        raise UserError(f"the server's model '{model_name}' is not a local path; pass --tokenizer PATH "
                        "so prompts can be fitted in the model's tokens")
    tokenizer = load_tokenizer(tok_source)
    weights_sha, tok_sha = provenance.model_hashes(cfg.model or model_name)
    model_info = ModelInfo(path=str(model_name), weights_sha256=weights_sha, tokenizer_sha256=tok_sha,
                           tokenizer=str(tok_source))
    commit, dirty = provenance.git_info()
    record = RunRecord(
        run_id=run_id, status="running", model=model_info,
        serving=ServingInfo(backend=cfg.backend, base_url=cfg.base_url, dtype=cfg.dtype,
                            tensor_parallel_size=cfg.tensor_parallel_size, extra_args=list(cfg.server_args),
                            concurrency=cfg.concurrency if cfg.backend == "server" else 1),
        code=CodeInfo(harness_version=provenance.harness_version(), git_commit=commit, git_dirty=dirty),
        seeds={"python": cfg.seed, "numpy": cfg.seed, "torch": cfg.seed, "fewshot": cfg.seed,
               "per_request_sampling": int(cfg.per_request_seed)},
        limit=cfg.limit, packages=provenance.package_versions(), host=provenance.host_info(),
        started_at=started, command=list(cfg.command or sys.argv),
        mode=cfg.mode, samples_per_item=max(1, int(cfg.samples_per_item)),
    )
    write_run(run_dir, record)

    try:
        with stop_on_sigterm():
            server = None
            try:
                if cfg.backend == "server" and not cfg.base_url:
                    server = VLLMServer(ServerConfig(
                        model=cfg.model, host=cfg.host, port=cfg.port, max_model_len=cfg.max_model_len,
                        dtype=cfg.dtype, tensor_parallel_size=cfg.tensor_parallel_size, api_key=cfg.api_key,
                        startup_timeout_s=cfg.startup_timeout_s, extra_args=list(cfg.server_args)),
                        log_path=run_dir / "server.log")
                    print(f"starting vLLM for {cfg.model} (log: {run_dir / 'server.log'}) ...", file=sys.stderr)
                    server.start()
                    remote = server.info
                    record.serving.managed = True
                    record.serving.startup_s = round(server.startup_s, 2)
                    print(f"server healthy at {server.base_url} after {server.startup_s:.1f} s", file=sys.stderr)
                if cfg.backend == "server":
                    window = cfg.max_model_len or remote.get("max_model_len")
                    if not window:
                        raise UserError("the server does not report max_model_len; pass --max-model-len")
                    base_url = server.base_url if server else cfg.base_url
                    if check_same_tokenizer(base_url, remote["model"], tokenizer, cfg.api_key) is False:
                        raise UserError(f"the tokenizer from {tok_source} does not match the served model's "
                                        f"(a probe text tokenizes differently on {base_url}); pass --tokenizer with "
                                        "the served model's tokenizer, or prompts would be fitted with wrong budgets")
                    record.serving.base_url = base_url
                    record.serving.server_version = remote.get("server_version")
                    served_name = remote["model"]
                else:
                    window = cfg.max_model_len or int(getattr(tokenizer, "model_max_length", 0) or 0)
                    if not window or window > 10**7:
                        raise UserError("pass --max-model-len for --backend hf (the tokenizer gives no window)")
                    base_url, served_name = None, cfg.model
                record.serving.max_model_len = int(window)
                record.truncation = {"policy": "middle", "unit": "tokens of the evaluated tokenizer",
                                     "max_model_len": int(window),
                                     "rule": "templated prompt + max_gen_toks <= max_model_len"}
                from harness.backends.lm import TaskSpec

                metadata = {"tokenizer": str(tok_source), "max_model_len": int(window), "mode": cfg.mode, **cfg.task_metadata}
                loaded = task_manager(metadata).load(cfg.tasks)
                check_task_versions(loaded["tasks"])
                specs = {name: TaskSpec.from_metadata(t.config.metadata, cfg.mode) for name, t in loaded["tasks"].items()}
                _apply_mode(loaded, cfg, tokenizer)
                if cfg.mode == "reasoning":  # a second pass (LongBench v2 CoT) thinks too: same budget
                    for name, t in loaded["tasks"].items():
                        specs[name].followup_max_gen_toks = int(t.config.generation_kwargs["max_gen_toks"])
                lm = _build_backend(cfg, base_url, served_name, tokenizer, int(window), specs)
                cache_db = cache_path(cfg.output_dir, model_info, int(window), cfg.backend) if cfg.use_cache else None
                results, wrapped = _evaluate(lm, loaded, cfg, cache_db)
                cached = getattr(wrapped, "cached_instances", [])
            finally:
                if server is not None:
                    server.stop()

        _fill_record(record, results, loaded, lm, specs, cached, run_dir)
    except BaseException as e:
        # A run that stops early never claims to be complete: it says how it ended. Finished
        # answers are in the request cache, so the same command resumes.
        record.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        record.errors.append(f"{type(e).__name__}: {str(e)[:500]}")
        record.finished_at = utc_now()
        with contextlib.suppress(Exception):
            write_run(run_dir, record)
        raise
    record.finished_at = utc_now()
    record.wall_time_s = round(time.monotonic() - t0, 3)
    failed = record.requests.get("failed", 0)
    record.status = "incomplete" if failed else "complete"
    write_run(run_dir, record)
    if failed:
        raise IncompleteRunError(
            f"{failed} request(s) failed after {cfg.max_retries} retries (first: {record.errors[0] if record.errors else '?'}). "
            f"Finished answers are saved; rerun the same command to send only the missing ones. Results: {run_dir}")
    return run_dir


def _fill_record(record: RunRecord, results: dict, loaded: dict, lm, specs: dict, cached: list, run_dir: Path) -> None:
    # Every request's record (k per item with samples per item); per item, the first one.
    all_by_task: dict[str, list] = {}
    for rec in list(lm.records) + [lm.record_for(inst) for inst in cached]:
        all_by_task.setdefault(rec.task, []).append(rec)
    by_task: dict[str, dict[int, object]] = {}
    for name, recs_of_task in all_by_task.items():
        for rec in recs_of_task:
            first = by_task.setdefault(name, {}).setdefault(rec.doc_id, rec)
            if rec.error and not first.error:  # an item shows an error if any of its requests failed
                by_task[name][rec.doc_id] = rec
    n_cached = 0
    totals = {"total": 0, "sent": int(getattr(lm, "n_sent", 0)), "cached": 0, "failed": 0}
    for name, task in loaded["tasks"].items():
        recs = by_task.setdefault(name, {})
        samples = results.get("samples", {}).get(name, [])
        # Benchmarks that truncate officially mark it on the document; count either kind.
        for s in samples:
            rec = recs.get(s["doc_id"])
            if rec is not None and (s.get("doc") or {}).get("_truncated"):
                rec.truncated = True
        metric_names = [m["metric"] for m in task.config.metric_list or []]
        rows = _sample_rows(samples, recs, metric_names)
        fname = f"samples_{name}.jsonl"
        atomic_write_jsonl(run_dir / fname, rows)
        n = len(samples)
        every = all_by_task.get(name, [])
        errs = [r for r in every if r.error]
        cached = sum(1 for r in every if r.from_cache)
        n_cached += cached
        entry = results["results"].get(name, {})
        record.tasks[name] = TaskResult(
            version=str((task.config.metadata or {}).get("version")),
            config_hash=task_config_hash(task),
            dataset_fingerprint=dataset_fingerprint(task),
            endpoint=specs[name].endpoint,
            generation_kwargs=dict(task.config.generation_kwargs or {}),
            n_samples=n,
            n_truncated=sum(1 for r in recs.values() if r.truncated),
            n_errors=len(errs),
            n_cached=cached,
            prompt_tokens=sum(r.prompt_tokens for r in every),
            completion_tokens=sum(r.completion_tokens or 0 for r in every),
            metrics=parse_metrics(entry, n),
            breakdown=breakdown(rows, list((task.config.metadata or {}).get("breakdown") or []), metric_names),
            samples_file=fname,
            data_sources=data_sources(samples),
            n_thinking_unclosed=(sum(1 for r in rows if (r["metrics"].get("thinking_unclosed") or 0) > 0)
                                 if "thinking_unclosed" in metric_names else None),
        )
        totals["total"] += len(every)
        totals["failed"] += len(errs)
        record.errors += [f"{name} doc {r.doc_id}: {r.error}" for r in errs[:5]]
    totals["cached"] = n_cached
    record.requests = totals
    for gname in loaded.get("groups", {}):
        entry = results["results"].get(gname) or results.get("groups", {}).get(gname, {})
        n = sum(record.tasks[t].n_samples for t in loaded["group_map"].get(gname, []) if t in record.tasks)
        record.groups[gname] = parse_metrics(entry, n)
        record.group_members[gname] = [t for t in loaded["group_map"].get(gname, []) if t in record.tasks]
        members = [record.tasks[t] for t in record.group_members[gname]]
        primary = next(iter(record.groups[gname]), None)
        if primary:
            record.group_breakdown[gname] = group_breakdown(members, primary)


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(asdict(EvalConfig()), indent=2))
    os._exit(0)
