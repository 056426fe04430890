"""The premise report (training/premise.py) as one figure, a pure function of premise.json.

Top row: the share of saliency the top-r rows hold, per layer and length (q, k heat maps at the
middle ratio), and averaged over layers for every ratio against its chance level. Bottom row: how
stable the top set is: overlap between prompts at each length, and of each length's set with the
longest length's, both against the overlap two random sets would have.
"""

from __future__ import annotations

from pathlib import Path

PROJ_STYLE = {"q": "-", "k": "--"}


def middle_ratio(ratios) -> float:
    """The ratio the summary line and the heat maps show: the middle one (0.3 of 0.1,0.3,0.5)."""
    return sorted(ratios)[len(ratios) // 2]


def _lines(ax, report: dict, series_of, ylabel: str, title: str) -> None:
    """One summary measure vs length: a line per ratio and projection, the ratio's chance dotted."""
    lengths = [str(n) for n in report["config"]["lengths"]]
    x = range(len(lengths))
    for i, r in enumerate(f"{r:g}" for r in report["config"]["ratios"]):
        colour = f"C{i}"
        for proj in ("q", "k"):
            series = series_of(report["summary"][proj][r])
            ax.plot(x, [series[n]["mean"] for n in lengths], PROJ_STYLE[proj], color=colour, marker="o",
                    label=f"{proj}, top {float(r):.0%}")
        ax.axhline(report["summary"]["q"][r]["chance_layer"], color=colour, linestyle=":", linewidth=1)
    ax.set_xticks(list(x), lengths)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    lengths = [str(n) for n in report["config"]["lengths"]]
    key = f"{middle_ratio(report['config']['ratios']):g}"
    x = range(len(lengths))
    fig, axes = plt.subplots(2, 3, figsize=(16, 10))
    for ax, proj in zip(axes[0][:2], ("q", "k")):
        grid = [[entry[proj]["by_length"][n][key]["share"] for n in lengths] for entry in report["layers"]]
        chance = report["summary"][proj][key]["chance_layer"]
        im = ax.imshow(grid, aspect="auto", cmap="magma", vmin=chance, vmax=1.0, interpolation="nearest",
                       origin="lower")
        ax.set_xticks(list(x), lengths)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("layer")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{proj}_proj: share of saliency in the top {float(key):.0%} rows\n(ranked within the layer; "
                     f"chance {chance:.1%} = darkest)")
        fig.colorbar(im, ax=ax, shrink=0.85)
    _lines(axes[0][2], report, lambda s: s["share"], "share of saliency (mean over layers)",
           "share held by the top rows vs length\n(dotted: chance = the kept fraction)")
    _lines(axes[1][0], report, lambda s: s["prompt_overlap"]["layer"], "|A ∩ B| / |A| (mean over layers)",
           "top set overlap between prompts, same length\n(dotted: two random sets of that size)")
    _lines(axes[1][1], report, lambda s: s["overlap_with_longest"], "|A ∩ B| / |A| (mean over layers)",
           f"top set overlap with the set at {lengths[-1]} tokens\n(dotted: two random sets of that size)")
    ax = axes[1][2]
    grid = [entry["q"]["by_length"][lengths[-1]][key]["head_share"] for entry in report["layers"]]
    chance = report["summary"]["q"][key]["chance_head"]
    im = ax.imshow(grid, aspect="auto", cmap="magma", vmin=chance, vmax=1.0, interpolation="nearest", origin="lower")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"q_proj at {lengths[-1]} tokens: share of the top {float(key):.0%} rows\nwithin each head "
                 f"(chance {chance:.1%})")
    fig.colorbar(im, ax=ax, shrink=0.85)
    cfg = report["config"]
    fig.suptitle(f"LongAct premise on {Path(cfg['model']).name}: {cfg['prompts']} documents per length, "
                 f"{cfg['site']} {cfg['statistic']}", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
