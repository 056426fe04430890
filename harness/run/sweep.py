"""Many checkpoints of one architecture on one vLLM engine: start it once, swap weights between
checkpoints, write one run directory per checkpoint.

    from harness.run.sweep import run_sweep
    runs = run_sweep(cfg, {"exp-baseline": "runs/exp/baseline/step-8", "exp-longact": "runs/exp/longact/step-8"})

A server start costs about a minute on CPU (several on a GPU); loading another checkpoint's
weights into the running engine costs seconds. Each run records its own checkpoint, weight hash
and request cache exactly as a fresh server's would (tests/test_sweep.py checks that the samples
equal a fresh server's). A run already complete with the same config is not redone, so a sweep
that finished needs no server at all; others resume from the request cache.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import interrupt
from harness.errors import IncompleteRunError, UserError
from harness.run import backends
from harness.run.config import EvalConfig
from tasks.tokens import load_tokenizer, tokenizer_identity

# config.json keys that differ between checkpoints of one architecture without changing it.
VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "torch_dtype", "dtype")


def serving_view(checkpoint: str, root: Path) -> str:
    """The directory the engine loads `checkpoint` from.

    vLLM's in-place reload from disk does not re-tie the output layer to the input embeddings
    (measured with vLLM 0.32: after a swap, a checkpoint with tied embeddings and new embedding
    weights gave other log-probs than a fresh server). For such checkpoints the engine serves an
    untied view: the same files (linked), a config with `tie_word_embeddings: false`, and the
    embedding matrix written once more as `lm_head.weight`, which is exactly what tying computes.
    Checkpoints without tied embeddings are served from their own directory."""
    src = Path(checkpoint).resolve()
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    if not cfg.get("tie_word_embeddings"):
        return str(src)
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import save_file

    view = root / hashlib.sha256(str(src).encode()).hexdigest()[:16]
    done = view / ".complete"
    if done.exists() and done.read_text() == str(src):
        return str(view)
    view.mkdir(parents=True, exist_ok=True)
    index_name = "model.safetensors.index.json"
    # transformers prefers a plain model.safetensors over an index, so a single-file checkpoint's
    # weights are linked under a shard name and the index lists both files.
    renamed = {"model.safetensors": "model-00001-of-00002.safetensors"}
    extra = "model-00002-of-00002.safetensors" if (src / "model.safetensors").exists() else "lm_head.safetensors"
    for f in src.iterdir():
        target = view / renamed.get(f.name, f.name)
        if f.name not in ("config.json", index_name) and f.is_file() and not target.exists():
            target.symlink_to(f)
    (view / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": False}, indent=2), encoding="utf-8")
    embed, weight_map = None, {}
    for f in sorted(src.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for name in st.keys():
                weight_map[name] = renamed.get(f.name, f.name)
                if embed is None and name.endswith("embed_tokens.weight"):
                    embed = st.get_tensor(name)
    if embed is None:
        raise UserError(f"{checkpoint}: tied embeddings but no embed_tokens.weight in its safetensors files")
    save_file({"lm_head.weight": embed.contiguous()}, str(view / extra))
    # An index names every file to load (transformers and vLLM both read it), the new one included.
    weight_map["lm_head.weight"] = extra
    (view / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2), encoding="utf-8")
    done.write_text(str(src))
    return str(view)


@dataclass
class Engine:
    """A running swappable server and the checkpoint whose weights it holds."""

    server: object
    loaded: str
    startup_s: float
    views: Path
    """Where untied views of tied checkpoints go (`serving_view`)."""
    swaps: list[float] = field(default_factory=list)

    def serve(self, checkpoint: str) -> float | None:
        """Make `checkpoint` the served weights; seconds the swap took (None: already loaded)."""
        if Path(checkpoint).resolve() == Path(self.loaded).resolve():
            return None
        seconds = self.server.load_weights(serving_view(checkpoint, self.views))
        self.loaded = checkpoint
        self.swaps.append(seconds)
        return round(seconds, 2)


def architecture(checkpoint: str) -> dict:
    cfg = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
    return {k: v for k, v in cfg.items() if k not in VOLATILE_CONFIG_KEYS}


def tokenizer_of(checkpoint: str) -> str:
    """The identity of a checkpoint's tokenizer (`tasks.tokens.tokenizer_identity`: what it does,
    not how its files happen to be written)."""
    return tokenizer_identity(load_tokenizer(str(checkpoint)))


def check_swappable(checkpoints: list[str]) -> None:
    """One engine serves them all only if they share the architecture and the tokenizer."""
    first = checkpoints[0]
    arch, tok = architecture(first), tokenizer_of(first)
    for ckpt in checkpoints[1:]:
        if architecture(ckpt) != arch:
            raise UserError(f"{ckpt} and {first} differ in config.json beyond the weights; one engine cannot serve both")
        if tokenizer_of(ckpt) != tok:
            raise UserError(f"{ckpt} and {first} have different tokenizers; one engine cannot serve both")


def already_done(cfg: EvalConfig) -> Path | None:
    """The run directory of an earlier, complete run of exactly this config (nothing to redo)."""
    run_dir = Path(cfg.run.output_dir) / str(cfg.run.run_id)
    try:
        rec = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        old = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    def without_command(config: dict) -> dict:  # argv differs between equal runs
        return {**config, "run": {**config.get("run", {}), "command": None}}

    same = without_command(old) == without_command(cfg.to_dict())
    return run_dir if rec.get("status") == "complete" and same else None


def run_sweep(cfg: EvalConfig, models: dict[str, str], early: "EarlyEngines | None" = None) -> dict[str, Path]:
    """Evaluate every checkpoint of `models` (run id -> checkpoint) with `cfg`'s flags; returns
    run id -> run directory, in the given order.

    One engine swaps weights from checkpoint to checkpoint. With `--servers N`, N engines start
    (each on its own GPUs where there are GPUs) and each takes the next checkpoint not yet taken
    when it finishes one, so the checkpoints spread over the engines; every run is the run one
    engine would have written (tests/test_sweep.py). `early` (`launch_early`): engines already
    booting on the first checkpoints, used when they are the ones this sweep would start."""
    cfgs = sweep_configs(cfg, models)
    out = {rid: done for rid, c in cfgs.items() if (done := already_done(c))}
    todo = [rid for rid in cfgs if rid not in out]
    for rid in out:
        print(f"== {rid}: complete in {out[rid]}, not redone", file=sys.stderr)
    if not todo:
        if early is not None:
            early.close()
        return {rid: out[rid] for rid in cfgs}
    check_swappable([cfgs[rid].model for rid in todo])
    n = max(1, min(cfg.serve.servers, len(todo)))
    with interrupt.handling_signals():
        engines = start_engines(cfgs, todo, n, early)
        try:
            if n == 1:
                out_, incomplete = _sweep_on(engines[0], cfgs, todo)
            else:
                out_, incomplete = _sweep_spread(engines, cfgs, todo)
        finally:
            from harness.backends.serve import stop_all

            stop_all([e.server for e in engines])
    out.update(out_)
    if incomplete:
        raise IncompleteRunError(f"{len(incomplete)} of {len(cfgs)} run(s) incomplete:\n" + "\n".join(incomplete))
    return {rid: out[rid] for rid in cfgs}


def sweep_configs(cfg: EvalConfig, models: dict[str, str]) -> dict[str, EvalConfig]:
    """Each checkpoint's run config (run id -> config), every one checked before an engine starts."""
    from harness.run.validate import check_config

    if cfg.client.base_url:
        raise UserError("a sweep starts its own vLLM engine: drop --base-url")
    if not backends.get(cfg.backend).swappable:
        raise UserError(f"a sweep swaps each checkpoint into one running engine, which --backend {cfg.backend} "
                        "cannot do: drop --backend")
    if cfg.serve.servers > 1 and cfg.serve.port is not None:
        raise UserError("--servers N picks a free port for each engine; drop --port")
    cfgs = {}
    for run_id, ckpt in models.items():
        c = copy.deepcopy(cfg)
        c.model, c.run.run_id = str(ckpt), run_id
        c.serve.servers = 1  # each run is served by one of the sweep's engines
        check_config(c)  # every checkpoint's mistakes before the engine starts
        cfgs[run_id] = c
    return cfgs


def engine_servers(cfgs: dict[str, EvalConfig], todo: list[str], n: int, report: bool = True) -> list:
    """n swappable servers (not launched), the i-th to start on the i-th checkpoint to do."""
    from harness.backends.serve import VLLMServer, placements

    first = cfgs[todo[0]]
    work = Path(first.run.output_dir) / ".engine"
    per_server = first.serve.tensor_parallel_size * first.serve.data_parallel_size
    servers = []
    for i, (dev, cpus) in enumerate(placements(n, per_server)):
        sc = backends.launch_config(cfgs[todo[i]], swappable=True, devices=dev, cpus=cpus)
        sc.model = serving_view(cfgs[todo[i]].model, work / "views")
        log = work / ("server.log" if n == 1 else f"server-{i}.log")
        servers.append(VLLMServer(sc, log_path=log, report_every_s=15.0 if report and first.run.progress else None))
    return servers


def start_engines(cfgs: dict[str, EvalConfig], todo: list[str], n: int, early: "EarlyEngines | None" = None) -> list[Engine]:
    """n swappable servers side by side, the i-th first holding the i-th checkpoint to do: those
    of `early` when they were launched on exactly these checkpoints, else started here."""
    from harness.backends.serve import start_all

    servers = early.take(todo[:n]) if early is not None else None
    if servers is None:
        servers = engine_servers(cfgs, todo, n)
        print(f"starting {'one vLLM engine' if n == 1 else f'{n} vLLM engines'} for {len(todo)} checkpoint(s) (log: "
              f"{', '.join(str(s.log_path) for s in servers)}) ...", file=sys.stderr)
        start_all(servers)
    print(f"engine(s) healthy after {max(s.startup_s for s in servers):.1f} s", file=sys.stderr)
    views = Path(cfgs[todo[0]].run.output_dir) / ".engine" / "views"
    return [Engine(s, cfgs[todo[i]].model, round(s.startup_s, 2), views) for i, s in enumerate(servers)]


class EarlyEngines:
    """Engines launched before a sweep (`launch_early`), booting in the background: a thread per
    server waits for its health (so its start-up time is measured as usual). A context manager:
    on the way out, whatever `run_sweep` did not take is stopped."""

    def __init__(self, run_ids: list[str], servers: list):
        import threading

        self.run_ids, self.servers = run_ids, servers
        self.errors: list[BaseException | None] = [None] * len(servers)
        self.threads = [threading.Thread(target=self._wait, args=(i,), daemon=True) for i in range(len(servers))]
        for t in self.threads:
            t.start()

    def _wait(self, i: int) -> None:
        try:
            self.servers[i].wait_ready()  # on failure it stops its server
        except BaseException as e:  # noqa: BLE001 - raised on the main thread by take()
            self.errors[i] = e

    def take(self, run_ids: list[str]) -> list | None:
        """The healthy servers if they were launched on `run_ids` (the checkpoints the sweep starts
        its engines on), else None, and they are stopped."""
        if not self.servers or run_ids != self.run_ids:
            self.close()
            return None
        for t in self.threads:
            while t.is_alive():
                interrupt.check()
                t.join(0.2)
        if error := next((e for e in self.errors if e is not None), None):
            self.close()
            raise error
        servers, self.servers = self.servers, []
        return servers

    def close(self) -> None:
        from harness.backends.serve import stop_all

        stop_all(self.servers)
        self.servers = []

    def __enter__(self) -> "EarlyEngines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def launch_early(cfg: EvalConfig, models: dict[str, str]) -> EarlyEngines:
    """Launch the engine(s) that `run_sweep(cfg, ...)` would start on the first of `models`, and
    return at once, so that they boot while the caller does other work (the demo trains while
    its engine boots on the starting checkpoint). Pass the result to `run_sweep(..., early=)`;
    nothing is launched when every run of `models` is already complete."""
    cfgs = sweep_configs(cfg, models)
    todo = [rid for rid, c in cfgs.items() if not already_done(c)]
    if not todo:
        return EarlyEngines([], [])
    n = max(1, min(cfg.serve.servers, len(todo)))
    servers = engine_servers(cfgs, todo, n, report=False)
    print(f"starting {'one vLLM engine' if n == 1 else f'{n} vLLM engines'} early, on {', '.join(todo[:n])} (log: "
          f"{', '.join(str(s.log_path) for s in servers)})", file=sys.stderr)
    from harness.backends.serve import launch_all

    launch_all(servers)
    return EarlyEngines(todo[:n], servers)


def _sweep_on(engine: Engine, cfgs: dict[str, EvalConfig], todo: list[str]) -> tuple[dict[str, Path], list[str]]:
    from harness.run.runner import run_eval

    out, incomplete = {}, []
    for rid in todo:
        print(f"== {rid}: {cfgs[rid].model}", file=sys.stderr)
        try:
            out[rid] = run_eval(cfgs[rid], engine=engine)
        except IncompleteRunError as e:  # the other checkpoints still run; the sweep says so at the end
            incomplete.append(f"{rid}: {e}")
    return out, incomplete


def _sweep_spread(engines: list[Engine], cfgs: dict[str, EvalConfig], todo: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Each engine on a thread of its own takes the next checkpoint until none is left. The main
    thread only waits, so a signal lands there; the engines' runs see the stop at their next check
    and write their records as interrupted. An error in one run lets the others finish theirs,
    starts no new one, and is raised after."""
    import queue
    import threading

    from harness.run.runner import run_eval

    waiting: queue.Queue = queue.Queue()
    for rid in todo:
        waiting.put(rid)
    out, incomplete, errors = {}, [], []
    lock = threading.Lock()

    def work(engine: Engine) -> None:
        while not errors and not interrupt.requested():
            try:
                rid = waiting.get_nowait()
            except queue.Empty:
                return
            print(f"== {rid}: {cfgs[rid].model} (engine {engine.server.base_url})", file=sys.stderr)
            try:
                run_dir = run_eval(cfgs[rid], engine=engine)
                with lock:
                    out[rid] = run_dir
            except IncompleteRunError as e:
                with lock:
                    incomplete.append(f"{rid}: {e}")
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                with lock:
                    errors.append(e)

    threads = [threading.Thread(target=work, args=(e,), name=f"sweep-engine-{i}", daemon=True)
               for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:
        interrupt.request_stop()
        for t in threads:  # the runs write their records as interrupted (bounded: they check every 0.2 s)
            t.join(60)
        raise
    if errors:
        raise errors[0]
    return out, incomplete
