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
from harness.run.config import EvalConfig

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


def tokenizer_identity(checkpoint: str) -> tuple:
    """What the served tokenizer does (vocabulary, special tokens, chat template), not how its
    files happen to be written (a re-saved tokenizer's files differ byte for byte)."""
    from tasks.tokens import load_tokenizer

    tok = load_tokenizer(str(checkpoint))
    return (sorted(tok.get_vocab().items()), tuple(tok.all_special_tokens), tok.chat_template)


def check_swappable(checkpoints: list[str]) -> None:
    """One engine serves them all only if they share the architecture and the tokenizer."""
    first = checkpoints[0]
    arch, tok = architecture(first), tokenizer_identity(first)
    for ckpt in checkpoints[1:]:
        if architecture(ckpt) != arch:
            raise UserError(f"{ckpt} and {first} differ in config.json beyond the weights; one engine cannot serve both")
        if tokenizer_identity(ckpt) != tok:
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


def run_sweep(cfg: EvalConfig, models: dict[str, str]) -> dict[str, Path]:
    """Evaluate every checkpoint of `models` (run id -> checkpoint) with `cfg`'s flags on one
    engine; returns run id -> run directory, in the given order."""
    from harness.backends.serve import VLLMServer
    from harness.run.runner import run_eval, server_config
    from harness.run.validate import check_config

    if cfg.client.base_url or cfg.backend != "server":
        raise UserError("a sweep starts its own vLLM engine: drop --base-url / --backend hf")
    if cfg.serve.servers > 1:
        raise UserError("a sweep of checkpoints runs on one engine that swaps weights; --servers N is not available "
                        "with --experiment yet: run one `longact eval --model CKPT --servers N` per checkpoint")
    cfgs = {}
    for run_id, ckpt in models.items():
        c = copy.deepcopy(cfg)
        c.model, c.run.run_id = str(ckpt), run_id
        check_config(c)  # every checkpoint's mistakes before the engine starts
        cfgs[run_id] = c
    out = {rid: done for rid, c in cfgs.items() if (done := already_done(c))}
    todo = [rid for rid in cfgs if rid not in out]
    for rid in out:
        print(f"== {rid}: complete in {out[rid]}, not redone", file=sys.stderr)
    if not todo:
        return {rid: out[rid] for rid in cfgs}
    check_swappable([cfgs[rid].model for rid in todo])
    first = cfgs[todo[0]]
    work = Path(first.run.output_dir) / ".engine"
    serve_cfg = server_config(first, swappable=True)
    serve_cfg.model = serving_view(first.model, work / "views")
    log = work / "server.log"
    server = VLLMServer(serve_cfg, log_path=log, report_every_s=15.0 if first.run.progress else None)
    print(f"starting one vLLM engine for {len(todo)} checkpoint(s) (log: {log}) ...", file=sys.stderr)
    with interrupt.handling_signals():
        try:
            server.start()
            engine = Engine(server, first.model, round(server.startup_s, 2), work / "views")
            print(f"engine healthy after {server.startup_s:.1f} s", file=sys.stderr)
            incomplete = []
            for rid in todo:
                print(f"== {rid}: {cfgs[rid].model}", file=sys.stderr)
                try:
                    out[rid] = run_eval(cfgs[rid], engine=engine)
                except IncompleteRunError as e:  # the other checkpoints still run; the sweep says so at the end
                    incomplete.append(f"{rid}: {e}")
        finally:
            server.stop()
    if incomplete:
        raise IncompleteRunError(f"{len(incomplete)} of {len(cfgs)} run(s) incomplete:\n" + "\n".join(incomplete))
    return {rid: out[rid] for rid in cfgs}
