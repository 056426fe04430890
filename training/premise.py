"""LongAct's premise, measured: do a few Q/K rows carry most of the activation, more so at long
context, and is that top set the same from one prompt to the next?

    longact mask inspect --model models/smollm2-135m --lengths 256,1024,4096,8192 --prompts 3

For each length, `prompts` documents of exactly that many tokens go through the model one at a
time; `training.mask.saliency` gives each q_proj/k_proj row's statistic per document (the same
site and statistic the mask calibrates on), and the documents' statistics are pooled as one
calibration over all of them would pool them. Per layer and head, for each ratio r:
- share: the statistic summed over the top-r rows (as `training.mask.select` picks them: ranked
  within the layer, the mask's default scope, and within each head) over the sum over all rows;
  with flat activations it would be the kept fraction (r, floored to whole rows);
- prompt overlap: |A ∩ B| / |A| of the top-r sets of two documents at one length, averaged over
  document pairs; two random sets of that size overlap by k / n in expectation;
- length overlap: the same between the pooled set at each length and at the shortest / longest.

Documents: a contiguous stretch of the RULER essay haystack (`tasks.ruler.sources.essay_words`:
the Paul Graham essays when `longact data ruler-essays` has built them, otherwise the generated
stand-in, recorded in `source`), document i starting at word i * (corpus / prompts), tokenised
without special tokens and cut to exactly the length. A shorter document is the start of the
longer one, so lengths differ only in how much context follows.

Per-document saliency is cached under `<out>/.cache/` (keyed by model, site, statistic and the
document's tokens), so an interrupted run resumes at the next document.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from tasks.corpus import CORPUS, check_corpus_path
from training.mask import MaskConfig, kept_rows, qk_modules, select
from training.premise_plot import middle_ratio, plot

RATIOS = (0.1, 0.3, 0.5)
REPORT_FILE = "premise.json"
PLOT_FILE = "premise.png"
CACHE_DIR = ".cache"
SCOPES = ("layer", "head")


@dataclass(frozen=True)
class PremiseConfig:
    model: str
    lengths: tuple[int, ...]
    prompts: int = 3
    ratios: tuple[float, ...] = RATIOS
    site: str = "pre_rope"
    statistic: str = "mean_abs"
    essay_path: str | None = None


@dataclass(frozen=True)
class ModelShape:
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    window: int


# ---- checks before any work -----------------------------------------------------------------

def parse_list(text: str, kind, flag: str) -> tuple:
    try:
        values = tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated {kind.__name__} values, got {text!r}") from None
    if not values:
        raise ValueError(f"{flag}: give at least one value")
    return values


def model_shape(model_dir: str | Path) -> ModelShape:
    """The attention shape and context window from config.json; a clear error when the directory
    is not a model or the model has no q_proj/k_proj (checked on an empty meta-device copy)."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: no such model directory (expected a Hugging Face model with config.json)")
    cfg = json.loads((path / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    window = cfg.get("max_position_embeddings")
    if not isinstance(window, int):
        raise ValueError(f"{path}/config.json: no integer max_position_embeddings, so the window is unknown")
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(f"{path}: not a causal LM transformers can build ({str(e).splitlines()[0][:200]})") from None
    qk_modules(skeleton)  # raises: the model has no modules named *q_proj / *k_proj
    heads = int(cfg["num_attention_heads"])
    return ModelShape(layers=int(cfg["num_hidden_layers"]), heads=heads,
                      kv_heads=int(cfg.get("num_key_value_heads") or heads),
                      head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // heads), window=window)


def check(cfg: PremiseConfig) -> ModelShape:
    """Every input problem as one ValueError line, before any model weights are read."""
    for r in cfg.ratios:
        if not 0.0 < r <= 1.0:
            raise ValueError(f"--ratios: {r:g} is outside (0, 1]; give fractions of rows such as 0.1,0.3,0.5")
    if cfg.prompts < 2:
        raise ValueError(f"--prompts: {cfg.prompts}; the overlap between prompts needs at least 2")
    MaskConfig(site=cfg.site, statistic=cfg.statistic)  # raises on an unknown site or statistic
    if any(n <= 0 for n in cfg.lengths):
        raise ValueError(f"--lengths: {cfg.lengths}; lengths are positive token counts")
    if cfg.essay_path:
        check_corpus_path(cfg.essay_path)
    shape = model_shape(cfg.model)
    over = [n for n in cfg.lengths if n > shape.window]
    if over:
        raise ValueError(f"--lengths: {', '.join(map(str, over))} over the model's window of {shape.window} tokens "
                         f"(max_position_embeddings in {cfg.model}/config.json)")
    return shape


# ---- pure measures ---------------------------------------------------------------------------

def top_rows(score: torch.Tensor, ratio: float, scope: str, head_dim: int) -> torch.Tensor:
    """Bool vector of the rows a LongAct mask at `ratio` would update, ranked by `score`."""
    return select({"q_proj": score}, MaskConfig(keep_ratio=ratio, scope=scope), head_dim)["q_proj"]


def share(score: torch.Tensor, rows: torch.Tensor) -> float:
    """The statistic summed over `rows` over its sum over all rows (rows = a bool vector)."""
    total = float(score.double().sum())
    return float(score.double()[rows].sum()) / total if total > 0 else float("nan")


def head_shares(score: torch.Tensor, rows: torch.Tensor, head_dim: int) -> list[float]:
    """`share` within each head (consecutive blocks of head_dim rows)."""
    return [share(s, r) for s, r in zip(score.view(-1, head_dim), rows.view(-1, head_dim))]


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """|A ∩ B| / |A| of two bool row sets (of equal size here, so symmetric)."""
    return float((a & b).sum()) / float(a.sum())


def mean_pair_overlap(sets: list[torch.Tensor]) -> float:
    pairs = list(itertools.combinations(sets, 2))
    return sum(overlap(a, b) for a, b in pairs) / len(pairs)


def chance(ratio: float, width: int) -> float:
    """Kept fraction of `width` rows at `ratio`: both the share flat activations would give and the
    expected overlap of two random sets of that size (E|A ∩ B| = k * k / n)."""
    return kept_rows(ratio, width) / width


def pool(per_prompt: list[torch.Tensor], statistic: str) -> torch.Tensor:
    """One statistic over several equally long documents, as one calibration over all would give."""
    s = torch.stack([p.double() for p in per_prompt])
    if statistic == "max":
        return s.amax(0).float()
    if statistic == "l2":
        return s.pow(2).mean(0).sqrt().float()
    return s.mean(0).float()


def module_report(per_length: dict[int, list[torch.Tensor]], ratios, head_dim: int, statistic: str) -> dict:
    """One q_proj or k_proj: per length and ratio, the shares, per-head spread and overlaps."""
    lengths = sorted(per_length)
    pooled = {n: pool(per_length[n], statistic) for n in lengths}
    width = pooled[lengths[0]].numel()
    out = {"rows": width, "heads": width // head_dim, "by_length": {}}
    for n in lengths:
        entry = {}
        for r in ratios:
            layer_rows = top_rows(pooled[n], r, "layer", head_dim)
            head_rows = top_rows(pooled[n], r, "head", head_dim)
            entry[f"{r:g}"] = {
                "share": share(pooled[n], layer_rows),
                "head_share": head_shares(pooled[n], head_rows, head_dim),
                # how the layer-ranked top set spreads over heads (even: r in every head)
                "head_kept_fraction": layer_rows.view(-1, head_dim).float().mean(1).tolist(),
                "prompt_overlap": {scope: mean_pair_overlap([top_rows(p, r, scope, head_dim) for p in per_length[n]])
                                   for scope in SCOPES},
                "overlap_with_shortest": overlap(layer_rows, top_rows(pooled[lengths[0]], r, "layer", head_dim)),
                "overlap_with_longest": overlap(layer_rows, top_rows(pooled[lengths[-1]], r, "layer", head_dim)),
            }
        out["by_length"][str(n)] = entry
    return out


def _stats(values: list[float]) -> dict:
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def summarise(layers: list[dict], lengths, ratios, head_dim: int) -> dict:
    """Per projection and ratio: the per-layer figures pooled over layers (and heads)."""
    out = {}
    for proj in ("q", "k"):
        width = layers[0][proj]["rows"]
        out[proj] = {"rows_per_layer": width, "heads": layers[0][proj]["heads"]}
        for r in ratios:
            key = f"{r:g}"
            at = {n: [entry[proj]["by_length"][str(n)][key] for entry in layers] for n in lengths}
            first, last = str(lengths[0]), str(lengths[-1])
            shares = {str(n): _stats([e["share"] for e in at[n]]) for n in lengths}
            out[proj][key] = {
                "chance_layer": chance(r, width), "chance_head": chance(r, head_dim),
                "share": shares,
                "head_share": {str(n): _stats([h for e in at[n] for h in e["head_share"]]) for n in lengths},
                "prompt_overlap": {scope: {str(n): _stats([e["prompt_overlap"][scope] for e in at[n]]) for n in lengths}
                                   for scope in SCOPES},
                "overlap_with_shortest": {str(n): _stats([e["overlap_with_shortest"] for e in at[n]]) for n in lengths},
                "overlap_with_longest": {str(n): _stats([e["overlap_with_longest"] for e in at[n]]) for n in lengths},
                "share_change": shares[last]["mean"] - shares[first]["mean"],
                "layers_share_grows": sum(b["share"] > a["share"] for a, b in zip(at[lengths[0]], at[lengths[-1]])),
            }
    return out


# ---- documents and measurement ---------------------------------------------------------------

@dataclass
class Documents:
    ids: dict[int, list[list[int]]]  # length -> one token list per prompt
    source: dict = field(default_factory=dict)


def documents(tokenizer, lengths, prompts: int, essay_path: str | None = None) -> Documents:
    """`prompts` documents of exactly each length from the long-text corpus (module docstring)."""
    from tasks.corpus import long_text_words
    from tasks.errors import UserError

    words, src = long_text_words(essay_path)
    longest = max(lengths)
    stride = len(words) // prompts
    ids: dict[int, list[list[int]]] = {n: [] for n in lengths}
    for i in range(prompts):
        take = longest  # words; grown until the stretch has enough tokens
        while True:
            stretch = words[i * stride: i * stride + take]
            tokens = tokenizer(" ".join(stretch), add_special_tokens=False)["input_ids"]
            if len(tokens) >= longest:
                break
            if i * stride + take >= len(words):
                raise UserError(f"the corpus ({src.origin}) has too few words for {prompts} documents of "
                                 f"{longest} tokens; use fewer --prompts or shorter --lengths")
            take *= 2
        for n in lengths:
            ids[n].append(tokens[:n])
    source = {**src.to_dict(), "documents": f"{prompts} stretches of {CORPUS}, document i from word "
                                            f"i * {stride}; each length is the first N tokens (no special tokens)"}
    return Documents(ids, source)


def _fingerprint(cfg: PremiseConfig) -> str:
    """The cache folder: one per model, site and statistic (documents are keyed by their tokens)."""
    h = hashlib.sha256()
    model = Path(cfg.model)
    h.update((model / "config.json").read_bytes())
    for f in sorted(model.glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    h.update(f"{cfg.site}|{cfg.statistic}".encode())
    return h.hexdigest()[:16]


def document_key(tokens: list[int]) -> str:
    """A document's cache name: its length and a digest of its tokens, so another --prompts,
    corpus or tokenizer never reads back saliency of other text."""
    return f"len{len(tokens)}-" + hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()[:16]


def _measured(model, tokens: list[int], mask_cfg: MaskConfig, path: Path) -> tuple[dict, float, bool]:
    """One document's saliency, the seconds its forward pass took and whether it came from the
    cache (the seconds are cached with it, so a resumed run still reports what each length cost)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from training.logprobs import no_logits
    from training.mask import saliency

    if path.exists():
        with safe_open(str(path), "pt") as f:
            seconds = (f.metadata() or {}).get("seconds")
        if seconds is not None:
            return load_file(str(path)), float(seconds), True
    ids = torch.tensor([tokens])
    start = time.perf_counter()
    with no_logits(model):
        scores = saliency(model, [{"input_ids": ids, "attention_mask": torch.ones_like(ids)}], mask_cfg)
    seconds = round(time.perf_counter() - start, 3)  # as cached, so a resumed run sums the same values
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in scores.items()}, str(tmp), metadata={"seconds": f"{seconds:.3f}"})
    tmp.replace(path)
    return scores, seconds, False


def measure(model, cfg: PremiseConfig, docs: Documents, cache: Path, log=print) -> tuple[dict, dict]:
    """Saliency per module, length and document ({name: {length: [tensor per prompt]}}) and the
    timing: seconds of forward passes per length, and how many documents were read from the cache
    rather than run."""
    cache.mkdir(parents=True, exist_ok=True)
    mask_cfg = MaskConfig(site=cfg.site, statistic=cfg.statistic)
    out: dict[str, dict[int, list[torch.Tensor]]] = {}
    timing: dict = {"per_length": {}, "documents_from_cache": 0}
    for n in sorted(docs.ids):
        spent = 0.0
        for tokens in docs.ids[n]:
            scores, seconds, cached = _measured(model, tokens, mask_cfg, cache / f"{document_key(tokens)}.safetensors")
            spent += seconds
            timing["documents_from_cache"] += cached
            for name, value in scores.items():
                out.setdefault(name, {}).setdefault(n, []).append(value)
        timing["per_length"][str(n)] = round(spent, 2)
        log(f"length {n}: {len(docs.ids[n])} documents, {spent:.1f} s of forward passes")
    return out, timing


def layer_reports(scores: dict, cfg: PremiseConfig, head_dim: int) -> list[dict]:
    from training.mask_report import layer_of

    layers: dict[int, dict] = {}
    for name, per_length in scores.items():
        proj = "q" if name.endswith("q_proj") else "k"
        layers.setdefault(layer_of(name), {})[proj] = module_report(per_length, cfg.ratios, head_dim, cfg.statistic)
    return [{"layer": i, "q": layers[i]["q"], "k": layers[i]["k"]} for i in sorted(layers)]  # same order, cached or not


def _rounded(value, digits: int = 5):
    """Floats to `digits` decimals (shares and overlaps need no more), so the report stays small."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def inspect(cfg: PremiseConfig, out_dir: str | Path, log=print) -> dict:
    """Measure, write premise.json and premise.png under `out_dir`, return the report."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = check(cfg)
    out = Path(out_dir)
    started, load_before = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    docs = documents(tokenizer, cfg.lengths, cfg.prompts, cfg.essay_path)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    scores, timing = measure(model, cfg, docs, out / CACHE_DIR / _fingerprint(cfg), log)
    lengths = sorted(cfg.lengths)
    layers = layer_reports(scores, cfg, shape.head_dim)
    report = {"config": {**asdict(cfg), "lengths": lengths}, "model_shape": asdict(shape), "source": docs.source,
              # forward-pass seconds per length (each document timed when it ran, cached with it) and
              # the machine's load around this run, since the seconds mean little without it
              "seconds": {**timing, "total": round(time.perf_counter() - started, 1)},
              "machine": {"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                          "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]},
              "summary": summarise(layers, lengths, cfg.ratios, shape.head_dim), "layers": layers}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (REPORT_FILE + ".tmp")
    tmp.write_text(json.dumps(_rounded(report), indent=1) + "\n")
    tmp.replace(out / REPORT_FILE)
    plot(report, out / PLOT_FILE)
    return report


def describe(report: dict) -> list[str]:
    """A few lines a person reads first, at the middle ratio asked for (0.3 of 0.1,0.3,0.5):
    concentration at the shortest and longest length, and how stable the top set is, each beside
    its chance level."""
    ratio = middle_ratio(report["config"]["ratios"])
    key, lengths = f"{ratio:g}", report["config"]["lengths"]
    first, last = str(lengths[0]), str(lengths[-1])
    lines = []
    for proj in ("q", "k"):
        s = report["summary"][proj][key]
        po = s["prompt_overlap"]["layer"]
        lines.append(
            f"{proj}_proj top {ratio:.0%} of rows: {s['share'][first]['mean']:.1%} of saliency at {first} tokens, "
            f"{s['share'][last]['mean']:.1%} at {last} (chance {s['chance_layer']:.1%}; grows in "
            f"{s['layers_share_grows']} of {len(report['layers'])} layers); overlap between prompts "
            f"{po[first]['mean']:.2f} at {first}, {po[last]['mean']:.2f} at {last}; set at {first} vs {last} "
            f"{s['overlap_with_longest'][first]['mean']:.2f} (chance {s['chance_layer']:.2f})")
    return lines
