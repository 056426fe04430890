"""Run lm-eval tasks against a served (or in-process) model and write a run directory.

    from harness.run.config import EvalConfig, RunConfig
    from harness.run.runner import run_eval
    run_dir = run_eval(EvalConfig(model="models/tiny-qwen3", max_model_len=2048, run=RunConfig(tasks=["tiny"])))

`run_eval` is five steps, each handing a typed value (harness/run/steps.py) to the next:

1. `prepare`: check the config, the model path and the task names, load the tokenizer (once:
   the task loaders share it), open the run directory with a `running` record -> `Prepared`;
2. `connect`: the run's backend (harness/run/backends.py) starts vLLM, or reaches the given
   server (or the weights are swapped into a running one) -> `Launch`; `check_target`: learn the window, check the tokenizer against every server and
   ask each the identity probe (harness/run/identity.py) -> `Target`; `request_cache`: the
   cache whose answers are proven to come from the served weights, or none;
3. `load_tasks`: load the tasks with the runtime metadata (tokenizer, window, mode), configure
   the mode, then read each task's request spec from its final config -> `Tasks`;
4. `evaluate`: lm-eval's `evaluate` on the backend behind the request cache -> `Outcome`
   (lm-eval's results and one `RequestRecord` per request, fresh or cached);
5. `write_results` (harness/run/results.py): samples files, and the results' fields of the record.

Steps never write into the record: `build_record` makes it once, from the `running` record and
the facts the steps returned (also for a run that stops early, from the facts it got to).

Resume: answers are cached with their request records as they arrive, in `<output_dir>/.cache/`
under a key of (model content, tokenizer, window, backend) (harness/run/cache.py), and are reused
only by servers whose identity probe gives the answer of the server that filled the cache
(harness/run/identity.py); rerunning the same command reads finished answers from there and sends
only the missing requests. Failed requests are never cached, so a rerun retries exactly those.

Tasks receive, through lm-eval's task metadata, the evaluated `tokenizer` and `max_model_len`
(plus anything given with `--metadata`), so benchmarks can apply their official truncation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import sys
import threading
import time
from pathlib import Path

from harness import interrupt
from harness.backends.lm import RequestRecord, TaskSpec
from harness.errors import IncompleteRunError, UserError
from harness.records import provenance
from harness.records.io import atomic_write_json, create_run_dir, lock_run_dir, utc_now, write_run
from harness.records.lm_eval_format import write_lm_eval_results
from harness.records.schema import CodeInfo, ModelInfo, RunRecord, ServerRecord, ServingInfo, ShardInfo
from harness.run import backends, cache, identity, lm_eval_internals
from harness.run.config import EvalConfig
from harness.run.modes import apply_mode
from harness.run.results import request_counts, write_results
from harness.run.shard import Shard, TrueDocIds, balanced_partition, prompt_weights, restrict
from harness.run.steps import Launch, Outcome, Prepared, Target, Tasks
from harness.run.tasks import TaskCatalog
from harness.run.validate import check_chat_template, check_config, check_metadata, check_tokenizer_matches_model
from tasks.tokens import load_tokenizer, tokenizer_identity

# Step 1 -------------------------------------------------------------------------------------

def prepare(cfg: EvalConfig) -> Prepared:
    """Checks that need no server (flags, paths, task names and metadata, tokenizer), then the
    run directory, locked for this run, with a `running` record."""
    from harness.backends.serve import server_info

    check_config(cfg)
    catalog = TaskCatalog()
    catalog.check_names(cfg.run.tasks)
    check_metadata(catalog, cfg.run.tasks, cfg.run.task_metadata)
    check_chat_template(catalog, cfg.run.tasks, cfg.run.chat_template)
    remote = [server_info(url, cfg.client.api_key) for url in cfg.client.base_url]
    model_name = cfg.model or remote[0]["model"]
    tok_source = str(cfg.tokenizer or model_name)
    if not Path(tok_source).exists() and cfg.tokenizer is None and cfg.model is None:
        raise UserError(f"the server's model '{model_name}' is not a local path; pass --tokenizer PATH "
                        "so prompts can be fitted in the model's tokens")
    try:
        tokenizer = load_tokenizer(tok_source)
    except UserError as e:
        raise UserError(f"{e}. Pass --tokenizer PATH.") from e
    check_tokenizer_matches_model(tokenizer, cfg.model)
    # The weights are what the path holds here (hashed once per run; what a server serves is
    # proven by the identity probe, `check_target`); the tokenizer is the one prompts are fitted with.
    model = ModelInfo(path=str(model_name), weights_sha256=provenance.weights_sha256(model_name),
                      tokenizer_sha256=tokenizer_identity(tokenizer), tokenizer=tok_source)

    with interrupt.deferred():  # a run directory always holds its record, even when a signal came here
        run_id, run_dir = create_run_dir(cfg.run.output_dir, cfg.run.run_id)
        lock = lock_run_dir(run_dir)
        atomic_write_json(run_dir / "config.json", cfg.to_dict())
        record = new_record(cfg, run_id, model)
        write_run(run_dir, record)
    return Prepared(catalog, tokenizer, tok_source, model, remote, run_dir, record, lock)


def new_record(cfg: EvalConfig, run_id: str, model: ModelInfo) -> RunRecord:
    commit, dirty = provenance.git_info()
    seed = cfg.run.seed
    return RunRecord(
        run_id=run_id, status="running", model=model,
        serving=ServingInfo(backend=cfg.backend, base_url=",".join(cfg.client.base_url) or None, dtype=cfg.serve.dtype,
                            tensor_parallel_size=cfg.serve.tensor_parallel_size,
                            data_parallel_size=cfg.serve.data_parallel_size, extra_args=started_server_args(cfg),
                            concurrency=cfg.client.concurrency if backends.get(cfg.backend).serves else 1),
        code=CodeInfo(harness_version=provenance.harness_version(), git_commit=commit, git_dirty=dirty),
        seeds={"python": seed, "numpy": seed, "torch": seed, "fewshot": seed,
               "per_request_sampling": int(cfg.client.per_request_seed)},
        limit=cfg.run.limit, packages=provenance.package_versions(), host=provenance.host_info(),
        started_at=utc_now(), command=list(cfg.run.command or sys.argv),
        mode=cfg.run.mode, samples_per_item=int(cfg.run.samples_per_item), chat_template=cfg.run.chat_template,
    )


def started_server_args(cfg: EvalConfig) -> list[str]:
    """The extra flags of the servers this run starts; none for a server it does not start
    (--base-url) or the in-process backend: the record lists only flags a server got."""
    return [] if cfg.client.base_url or not backends.get(cfg.backend).serves else list(cfg.serve.extra_args)


# Step 2 -------------------------------------------------------------------------------------

@contextlib.contextmanager
def connect(cfg: EvalConfig, prep: Prepared, engine=None):
    """Yield the `Launch` of the run's backend (harness/run/backends.py), which stops what it
    started on the way out, whatever happens. `engine` (harness/run/sweep.py): a running server
    that loads `cfg.model` into itself."""
    if engine is not None:
        swap_s = engine.serve(cfg.model)
        yield Launch([engine.server.base_url], [engine.server.info], managed=True, startup_s=engine.startup_s,
                     weights_swap_s=swap_s)
        return
    with backends.get(cfg.backend).connect(cfg, prep) as launch:
        yield launch


def check_target(cfg: EvalConfig, prep: Prepared, launch: Launch) -> Target:
    """Check every server before any request: the window fits, the tokenizer matches, and each
    answers the identity probe (several: alike, or the odd one out is named)."""
    from harness.backends.serve import check_same_tokenizer

    if not launch.base_urls:  # in-process
        return Target(launch.window, served_names=[cfg.model])
    base_urls, infos = launch.base_urls, launch.infos
    windows = []
    for url, info in zip(base_urls, infos):
        served = info.get("max_model_len")
        if cfg.max_model_len and served and cfg.max_model_len > served:
            raise UserError(f"--max-model-len {cfg.max_model_len} exceeds the {served}-token window of the server at "
                            f"{url}; its 400s could never succeed. Use --max-model-len {served} or less")
        windows.append(served)
        if check_same_tokenizer(url, info["model"], prep.tokenizer, cfg.client.api_key) is False:
            raise UserError(f"the tokenizer from {prep.tokenizer_source} does not match the served model's "
                            f"(a probe text tokenizes differently on {url}); pass --tokenizer with "
                            "the served model's tokenizer, or prompts would be fitted with wrong budgets")
    known = [w for w in windows if w]
    window = cfg.max_model_len or (min(known) if known else None)
    if not window:
        raise UserError("the server does not report max_model_len; pass --max-model-len")
    names = [info["model"] for info in infos]
    served = identity.probe_servers(base_urls, names, cfg.client.api_key)
    servers = ([ServerRecord(url, info["model"], fp, info.get("server_version"))
                for url, info, fp in zip(base_urls, infos, served.fingerprints)] if len(base_urls) > 1 else [])
    return Target(int(window), list(base_urls), names, infos[0].get("server_version"), servers,
                  served.fingerprints[0], served.probe_s)


def request_cache(cfg: EvalConfig, prep: Prepared, launch: Launch, target: Target) -> str | None:
    """The request cache this run reads and fills (`<output-dir>/.cache/requests-<key>.sqlite`),
    once the served weights are proven to be the ones that filled it (harness/run/identity.py);
    None with --no-cache, or when what is served cannot be established (then said on stderr)."""
    if not cfg.run.use_cache:
        return None
    model = model_info(prep.model, target)
    path = cache_path(cfg.run.output_dir, model, target.window, cfg.backend, cfg.run.chat_template)
    proven = path is not None and (not target.base_urls or identity.claim_cache(
        path + ".sqlite", model, target.base_urls, launch.managed, prep.record.run_id))
    if not proven:
        print("request cache off: the served weights cannot be identified (the server gives no log-probs to the "
              "identity probe); a rerun will send every request again", file=sys.stderr)
        return None
    return path + ".sqlite"


# Step 3 -------------------------------------------------------------------------------------

def load_tasks(cfg: EvalConfig, prep: Prepared, target: Target) -> Tasks:
    metadata = {"tokenizer": prep.tokenizer_source, "max_model_len": target.window, "mode": cfg.run.mode,
                **cfg.run.task_metadata}
    loaded = prep.catalog.load(cfg.run.tasks, metadata)
    apply_mode(loaded["tasks"], cfg.run.mode, int(cfg.run.samples_per_item), cfg.run.reasoning_budget, prep.tokenizer)
    items, shard = select_shard(cfg, prep, loaded) if cfg.run.shard else (None, None)
    specs = {name: TaskSpec.from_task(task, cfg.run.mode, cfg.run.chat_template) for name, task in loaded["tasks"].items()}
    return Tasks(loaded, specs, items, shard)


def select_shard(cfg: EvalConfig, prep: Prepared, loaded: dict) -> tuple[dict[str, list[int]], ShardInfo]:
    """This shard's items (the same partition in every shard: harness/run/shard.py); tasks it has
    no item of are dropped from the run. Returns (the items, the record's `shard` entry: the
    selection, for `longact merge`)."""
    shard = Shard.parse(cfg.run.shard)
    weights, totals = prompt_weights(loaded["tasks"], prep.tokenizer, cfg.run.limit)
    items = balanced_partition(weights, shard.count)[shard.index - 1]
    restrict(loaded, items)
    tokens = {task: dict(pairs) for task, pairs in weights.items()}
    entry = ShardInfo(shard.index, shard.count, items, totals,
                      sum(tokens[t][i] for t, ids in items.items() for i in ids))
    print(f"shard {shard}: {sum(map(len, items.values()))} of {sum(totals.values())} items "
          f"(~{entry.prompt_tokens} prompt tokens)", file=sys.stderr)
    return items, entry


# Step 4 -------------------------------------------------------------------------------------

def make_backend(cfg: EvalConfig, tokenizer, target: Target, specs: dict[str, TaskSpec]):
    """The run's backend: lm-eval's model that requests go through (harness/run/backends.py)."""
    return backends.get(cfg.backend).make(cfg, tokenizer, target, specs)


def cache_path(output_dir: str, model: ModelInfo, window: int, backend: str, chat_template: str = "task") -> str | None:
    """The request cache of (model content, tokenizer, window, backend); None when the model's
    content cannot be established (a remote server whose weights are unreadable and that gives
    no probe answer): a cache keyed by a name could hand one checkpoint's answers to another.
    Which weights may read a cache is proven separately (`request_cache`)."""
    identity = model.weights_sha256 or model.served_fingerprint
    if identity is None:
        return None
    key = provenance.json_hash([identity, model.tokenizer_sha256, window, backend, cache.FORMAT, chat_template])[:20]
    return str(Path(output_dir) / ".cache" / f"requests-{key}")


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)


def configure_tasks(cfg: EvalConfig, loaded: dict) -> None:
    """The run's decoding overrides, zero-shot default and few-shot seed, on every task."""
    for task in loaded["tasks"].values():
        if task.get_config("output_type") == "generate_until" and cfg.run.gen_kwargs:
            task.set_config(key="generation_kwargs", value=dict(cfg.run.gen_kwargs), update=True)
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=cfg.run.seed)


def evaluate(cfg: EvalConfig, tasks: Tasks, lm) -> dict:
    """lm-eval's simple_evaluate minus model construction, keeping the task objects we need, on
    `lm` (`make_backend`'s backend, behind the request cache unless it is off); lm-eval's results."""
    from lm_eval.evaluator import evaluate as lm_evaluate

    seed_everything(cfg.run.seed)
    configure_tasks(cfg, tasks.loaded)
    with lm_eval_internals.task_progress(cfg.run.progress):
        if tasks.items is None:
            return lm_evaluate(lm=lm, task_dict=tasks.loaded, limit=cfg.run.limit, log_samples=True,
                               bootstrap_iters=1000, verbosity="WARNING")
        # the shard's items were chosen within --limit
        return lm_evaluate(lm=TrueDocIds(lm, tasks.items), task_dict=tasks.loaded, samples=tasks.items,
                           log_samples=True, bootstrap_iters=1000, verbosity="WARNING")


@contextlib.contextmanager
def behind_cache(backend, cache_file: str | None):
    """`backend` behind the request cache at `cache_file` (as it is when there is none), closed on
    the way out however the run ends: closing flushes the answers the cache thread still holds."""
    if cache_file is None:
        yield backend
        return
    lm = cache.ResumableLM(backend, cache_file)
    try:
        yield lm
    finally:
        with interrupt.deferred():
            lm.close()


def outcome_of(results: dict | None, backend, lm) -> Outcome:
    """The accounting of every request so far, fresh (the backend's) or cached (the cache's); a
    stopped run has it too, for what happened up to the stop."""
    records = list(getattr(backend, "records", [])) + list(getattr(lm, "cached_records", []))
    return Outcome(results or {}, records, int(getattr(backend, "n_sent", 0)), [r for r in records if r.error])


def model_info(model: ModelInfo, target: Target) -> ModelInfo:
    """The model as evaluated: with the served weights' probe answer when their files are unreadable."""
    return dataclasses.replace(model, served_fingerprint=target.fingerprint) if target.fingerprint else model


def serving_info(serving: ServingInfo, launch: Launch | None, target: Target | None, backend) -> ServingInfo:
    """The record's `serving`: the config's (the `running` record's), then what connecting found,
    then each server's request counts from the backend's pool."""
    if launch is None:
        return serving
    serving = dataclasses.replace(serving, managed=launch.managed, startup_s=launch.startup_s,
                                  weights_swap_s=launch.weights_swap_s)
    if target is None:
        return serving
    if not target.base_urls:  # in-process
        return dataclasses.replace(serving, max_model_len=target.window)
    pool = getattr(backend, "pool", None)
    servers = [dataclasses.replace(server, sent=ep.sent, answered=ep.answered, taken_out=ep.out_reason)
               for server, ep in zip(target.servers, pool.endpoints)] if pool else target.servers
    return dataclasses.replace(serving, base_url=",".join(target.base_urls), server_version=target.server_version,
                               max_model_len=target.window, servers=servers, identity_probe_s=target.probe_s)


def build_record(prep: Prepared, launch: Launch | None = None, target: Target | None = None,
                 tasks: Tasks | None = None, backend=None, results: dict | None = None, **end) -> RunRecord:
    """The run's record: the `running` one with the facts of the steps that ran (`results`:
    `write_results`'), and `end` (status, finished_at, wall_time_s)."""
    facts: dict = {"serving": serving_info(prep.record.serving, launch, target, backend)}
    if target is not None:
        facts["model"] = model_info(prep.model, target)
        facts["truncation"] = {"policy": "middle", "unit": "tokens of the evaluated tokenizer",
                               "max_model_len": target.window,
                               "rule": "templated prompt + max_gen_toks <= max_model_len"}
    if tasks is not None and tasks.shard is not None:
        facts["shard"] = tasks.shard
    return dataclasses.replace(prep.record, **facts, **(results or {}), **end)


def incomplete_message(failed: list[RequestRecord], errors: list[str], run_dir: Path) -> str:
    """What to do about failed requests: a rerun resends them, which helps unless the server
    rejected them (a 4xx other than 408/429 is never retried, and would be rejected again)."""
    from harness.backends.lm import RETRYABLE_STATUS

    rejected = [r for r in failed if r.status is not None and r.status not in RETRYABLE_STATUS]
    first = errors[0] if errors else "?"
    if len(rejected) == len(failed):
        return (f"the server rejected {len(failed)} request(s) (first: {first}); rerunning the same command would "
                f"be rejected again: check the window (--max-model-len), the task's prompts and the server's log. "
                f"Results so far: {run_dir}")
    return (f"{len(failed)} request(s) failed (first: {first}). Finished answers are saved; rerun the same command "
            f"to send only the missing ones. Results: {run_dir}")


# The run ------------------------------------------------------------------------------------

def run_eval(cfg: EvalConfig, engine=None) -> Path:
    """Evaluate and write `<output_dir>/<run_id>/`; returns the run directory.

    `engine`: a running swappable server to evaluate `cfg.model` on (harness/run/sweep.py).
    Raises IncompleteRunError (after writing everything) when some requests failed, and
    `interrupt.Interrupted` (after writing run.json with status `interrupted`) on SIGINT/SIGTERM.
    """
    t0 = time.monotonic()
    # lm-eval warns once per custom-dataset task about --metadata; our CLI has its own flag.
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    with interrupt.handling_signals():
        prep = prepare(cfg)
        try:
            return _run(cfg, prep, t0, engine)
        finally:
            prep.lock.close()


_LOADING = threading.Lock()
"""Runs of one process (a sweep spread over engines) load their tasks one at a time: loaders may
share state (tokenizer caches, lm-eval's task index) and data must not depend on what else ran."""


def _run(cfg: EvalConfig, prep: Prepared, t0: float, engine) -> Path:
    launch = target = tasks = backend = lm = results = record = None
    try:
        # A stop is checked between phases too: a signal that some library swallowed still ends the run.
        interrupt.check()
        with connect(cfg, prep, engine) as launch:
            target = check_target(cfg, prep, launch)
            cache_file = request_cache(cfg, prep, launch, target)
            interrupt.check()
            with _LOADING:
                tasks = load_tasks(cfg, prep, target)
            interrupt.check()
            backend = make_backend(cfg, prep.tokenizer, target, tasks.specs)
            with behind_cache(backend, cache_file) as lm:
                outcome = outcome_of(evaluate(cfg, tasks, lm), backend, lm)
        interrupt.check()
        results = write_results(prep, tasks, outcome)
        record = build_record(prep, launch, target, tasks, backend, results, finished_at=utc_now(),
                              wall_time_s=round(time.monotonic() - t0, 3),
                              status="incomplete" if outcome.failed else "complete")
        interrupt.check()
        with interrupt.deferred():  # a stop during these writes raises after them, and the handler below
            write_run(prep.run_dir, record)  # rewrites the status: any stop before we return is `interrupted`
            write_lm_eval_results(prep.run_dir, record)  # results_<time>.json for lm-eval's tooling
    except BaseException as e:
        # A run that stops early never claims to be complete: it says how it ended, what its
        # requests came to and how long it ran. Finished answers are in the request cache, so the
        # same command resumes.
        record = record or build_record(prep, launch, target, tasks, backend, results,
                                        requests=request_counts(outcome_of(None, backend, lm)))
        record = dataclasses.replace(record, status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                                     errors=[*record.errors, f"{type(e).__name__}: {str(e)[:500]}"],
                                     finished_at=utc_now(), wall_time_s=round(time.monotonic() - t0, 3))
        with contextlib.suppress(Exception), interrupt.deferred():
            write_run(prep.run_dir, record)
            interrupt.log(f"run.json written: status {record.status}, requests {record.requests}")
        raise
    if outcome.failed:
        raise IncompleteRunError(incomplete_message(outcome.failed, record.errors, prep.run_dir))
    return prep.run_dir
