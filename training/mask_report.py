"""Where a LongAct mask puts its updated Q/K rows, and what a run did to the weights.

    python -m training.mask_report CHECKPOINT              # writes the two files below, prints a summary

`write(checkpoint)` reads `<checkpoint>/longact_mask/` and the checkpoint's config.json and writes,
next to the mask:
- `mask_stats.json`: per layer, for q_proj and k_proj, the kept (= updated) fraction of the
  layer's rows and of each head's rows (k_proj: per key/value head), plus a summary of how the
  kept rows spread over heads;
- `mask_spread.png`: the per-head kept fractions as two layer x head heat maps (q, k).

`weight_changes(start_dir, checkpoint)` compares a run's checkpoint with the model it started from,
Q/K row by row (bitwise) under the checkpoint's mask, and every other tensor as a whole.
`training/experiment.py` calls both after each arm and writes the evidence summary.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import torch

from training.checkpoint import MASK_SUBDIR
from training.mask import LongActMask

STATS_FILE = "mask_stats.json"
EVIDENCE_FILE = "evidence.json"
PLOT_FILE = "mask_spread.png"
_LAYER = re.compile(r"layers\.(\d+)\.")


def head_dim_of(model_dir: str | Path) -> int:
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return int(cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])


def layer_of(name: str) -> int:
    found = _LAYER.search(name)
    if not found:
        raise ValueError(f"{name}: no `layers.N.` in the module name")
    return int(found.group(1))


def spread(mask: LongActMask, head_dim: int) -> dict:
    """Per-layer and per-head kept fractions of q_proj and k_proj rows (True = updated)."""
    layers: dict[int, dict] = {}
    for name, keep in mask.keep.items():
        proj = "q" if name.endswith("q_proj") else "k"
        heads = keep.view(-1, head_dim).float().mean(1)  # [heads]
        score = mask.scores[name].double()
        layers.setdefault(layer_of(name), {})[proj] = {
            "rows": int(keep.numel()), "kept": int(keep.sum()), "kept_fraction": float(keep.float().mean()),
            # the kept rows' share of the layer's summed saliency: = kept_fraction if activations were flat
            "saliency_share": float(score[keep].sum() / score.sum()) if float(score.sum()) > 0 else None,
            "head_kept_fraction": [round(float(h), 6) for h in heads]}
    per_layer = [{"layer": i, **layers[i]} for i in sorted(layers)]
    summary = {}
    for proj in ("q", "k"):
        rows = [entry[proj] for entry in per_layer]
        fractions = [r["kept_fraction"] for r in rows]
        heads = torch.tensor([r["head_kept_fraction"] for r in rows])  # [layers, heads]
        kept = heads * head_dim  # kept rows per head
        # the share of a layer's kept rows held by its busiest head; 1/heads when spread evenly
        top_share = kept.max(1).values / kept.sum(1).clamp(min=1)
        shares = [r["saliency_share"] for r in rows if r["saliency_share"] is not None]
        summary[proj] = {"layers": len(rows), "heads": int(heads.shape[1]),
                         "kept_fraction_min": min(fractions), "kept_fraction_max": max(fractions),
                         "saliency_share_min": min(shares, default=None), "saliency_share_max": max(shares, default=None),
                         "head_kept_fraction_min": float(heads.min()), "head_kept_fraction_max": float(heads.max()),
                         "heads_with_no_kept_row": int((kept == 0).sum()),
                         "heads_fully_kept": int((heads == 1).sum()),
                         "top_head_share_mean": float(top_share.mean()), "top_head_share_max": float(top_share.max())}
    return {"config": asdict(mask.cfg), "hash": mask.digest(), "head_dim": head_dim,
            "summary": summary, "layers": per_layer}


def plot(stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 7), width_ratios=[stats["summary"][p]["heads"] for p in ("q", "k")])
    for ax, proj in zip(axes, ("q", "k")):
        grid = [entry[proj]["head_kept_fraction"] for entry in stats["layers"]]  # [layers, heads]
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"{proj}_proj: kept rows per head")
        ax.set_xlabel("head" if proj == "q" else "key/value head")
        ax.set_ylabel("layer")
    cfg = stats["config"]
    fig.suptitle(f"LongAct mask: fraction of each head's rows updated\n({cfg['strategy']}, keep_ratio "
                 f"{cfg['keep_ratio']}, scope {cfg['scope']}, {cfg['site']} {cfg['statistic']})")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="kept fraction")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(checkpoint: str | Path) -> dict:
    """mask_stats.json and mask_spread.png next to the checkpoint's mask; returns the stats."""
    folder = Path(checkpoint) / MASK_SUBDIR
    stats = spread(LongActMask.load(folder), head_dim_of(checkpoint))
    (folder / STATS_FILE).write_text(json.dumps(stats, indent=1) + "\n")
    plot(stats, folder / PLOT_FILE)
    return stats


def describe(stats: dict) -> str:
    parts = []
    for proj in ("q", "k"):
        s = stats["summary"][proj]
        share = (f" holding {s['saliency_share_min']:.0%}-{s['saliency_share_max']:.0%} of its saliency"
                 if s.get("saliency_share_min") is not None else "")
        parts.append(f"{proj}: {s['kept_fraction_min']:.4f}-{s['kept_fraction_max']:.4f} of each layer's rows kept{share}; "
                     f"per head {s['head_kept_fraction_min']:.2f}-{s['head_kept_fraction_max']:.2f} "
                     f"({s['heads_with_no_kept_row']} of {s['layers'] * s['heads']} heads none, "
                     f"{s['heads_fully_kept']} all); busiest head holds {s['top_head_share_mean']:.0%} of a layer's "
                     f"kept rows on average (max {s['top_head_share_max']:.0%}; even = {1 / s['heads']:.0%})")
    return "mask spread: " + "; ".join(parts)


# ---- what a run did to the weights ----------------------------------------------------------

def _tensors(model_dir: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns, so equal means bit-identical (-0.0 != 0.0, NaN == same NaN)."""
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.contiguous().view(ints[t.element_size()])


@torch.no_grad()
def weight_changes(start_dir: str | Path, checkpoint: str | Path) -> dict:
    """Bitwise comparison of a checkpoint with its starting weights: Q/K rows split by the
    checkpoint's mask (masked rows must not have changed), every other tensor as a whole."""
    start, end = _tensors(start_dir), _tensors(checkpoint)
    keep = LongActMask.load(Path(checkpoint) / MASK_SUBDIR).keep
    out = {"masked_rows": 0, "masked_rows_changed": 0, "kept_rows": 0, "kept_rows_moved": 0,
           "other_tensors": 0, "other_tensors_moved": 0, "dtype_cast": []}
    for key in sorted(set(start) & set(end)):
        a, b = start[key], end[key]
        if a.dtype != b.dtype:  # e.g. a bf16 start trained in fp32: the cast is exact
            out["dtype_cast"].append(key)
            a = a.to(b.dtype)
        module = key.rsplit(".", 1)[0]
        if module in keep and key.endswith((".weight", ".bias")):
            differs = (_bits(a) != _bits(b)).reshape(a.shape[0], -1).any(1)  # [rows]
            k = keep[module]
            out["masked_rows"] += int((~k).sum())
            out["masked_rows_changed"] += int((differs & ~k).sum())
            out["kept_rows"] += int(k.sum())
            out["kept_rows_moved"] += int((differs & k).sum())
        else:
            out["other_tensors"] += 1
            out["other_tensors_moved"] += int(not torch.equal(_bits(a), _bits(b)))
    out["dtype_cast"] = len(out["dtype_cast"])
    return out


def evidence(start_dir: str | Path, arms: dict[str, dict], log=print) -> dict:
    """The run's evidence, per arm and seed: the weight comparison with the start, reward and grad
    norm per step, wall time and (masked arms) the mask spread; each line also goes to `log`.
    `arms`: {arm: {seed: {"checkpoint": dir, "wall_s": seconds}}}."""
    from tasks import trainer_layout

    out = {"start": str(start_dir), "arms": {}}
    for arm, seeds in arms.items():
        for seed, run in seeds.items():
            ckpt = Path(run["checkpoint"])
            steps = trainer_layout.read_metrics(trainer_layout.run_dir_of(ckpt))
            if not list(Path(start_dir).glob("*.safetensors")):  # e.g. a hub id: nothing local to compare with
                log(f"[{arm} seed {seed}] {start_dir}: no local safetensors, weights not compared")
                continue
            changes = weight_changes(start_dir, ckpt)
            entry = {"checkpoint": str(ckpt), "wall_s": run.get("wall_s"), "weights": changes,
                     "reward": [r["reward"] for r in steps], "grad_norm": [r["grad_norm"] for r in steps],
                     "updates": [r["updates"] for r in steps]}
            masked = changes["masked_rows"] > 0
            if masked:
                entry["mask"] = write(ckpt)["summary"]
            out["arms"].setdefault(arm, {})[str(seed)] = entry
            nonzero = sum(1 for g, u in zip(entry["grad_norm"], entry["updates"]) if u and g > 0)
            log(f"[{arm} seed {seed}] {len(steps)} steps in {run.get('wall_s', 0.0):.0f} s; reward per step "
                f"{' '.join(f'{r:.3f}' for r in entry['reward'])}; grad norm {' '.join(f'{g:.3g}' for g in entry['grad_norm'])} "
                f"({nonzero} of {len(steps)} steps non-zero)")
            log(f"[{arm} seed {seed}] vs the start: q/k rows moved {changes['kept_rows_moved']} of {changes['kept_rows']} "
                f"updatable, masked rows changed {changes['masked_rows_changed']} of {changes['masked_rows']}"
                f"{' (bit-identical)' if masked and not changes['masked_rows_changed'] else ''}; other tensors moved "
                f"{changes['other_tensors_moved']} of {changes['other_tensors']}")
            if masked:
                log(f"[{arm} seed {seed}] {describe({'summary': entry['mask']})}")
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a trainer checkpoint directory (with longact_mask/)")
    args = p.parse_args(argv)
    print(describe(write(args.checkpoint)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
