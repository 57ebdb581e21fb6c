"""The gap report's five figures (per-epoch statistics computed here, which is much faster than
letting seaborn aggregate). Each takes plain numbers and writes one PNG."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.comparisons import IDENTICAL
from ..core.metrics import METRICS, Metric
from .figures import DPI, pyplot


def draw_gap_figures(
    history: pd.DataFrame,
    final_gaps: dict[str, dict[int, float]],
    weights: Callable[[str], Iterable[dict[str, np.ndarray]]],
    changes: dict[str, dict[str, dict[str, Any]]],
    out: Path,
) -> None:
    """The gap report's five figures. `history`: one row per (variant, seed, epoch);
    `final_gaps`: each variant's loss gap at the end of training, by seed, in the report's
    order; `weights(variant)`: the kept models' state dicts; `changes`: per variant but the
    baseline, per compared measure, its change's JSON (`Comparison.to_json`)."""
    order = list(final_gaps)
    verdict_forest(changes, out / "verdicts.png")
    learning_curves(history, order, out / "learning_curves.png")
    gap_per_epoch(history, order, out / "loss_gap.png")
    final_gap(final_gaps, out / "final_gap.png")
    weight_magnitudes(order, weights, out / "weight_magnitudes.png")


# A verdict's colour: the better way green, the worse way red, equivalent blue; grey where the
# interval decides nothing.
VERDICT_COLOURS = {
    "better": "tab:green",
    "worse": "tab:red",
    "equivalent": "tab:blue",
    IDENTICAL: "black",
}


def verdict_forest(changes: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """One panel per compared measure: each variant's change against the baseline with its
    corrected interval, the ±δ band shaded, the marker's colour its verdict."""
    plt, _ = pyplot()
    names = list(changes)
    keys = list(next(iter(changes.values()))) if changes else []
    fig, axes = plt.subplots(
        1,
        max(1, len(keys)),
        figsize=(4.2 * max(1, len(keys)), 0.45 * len(names) + 1.6),
        sharey=True,
        squeeze=False,
    )
    for ax, key in zip(axes.flat, keys, strict=False):
        metric = METRICS[key]
        delta = next(iter(changes.values()))[key]["delta"] * metric.scale
        ax.axvspan(-delta, delta, color="0.88", zorder=0)
        ax.axvline(0.0, color="0.4", linewidth=0.8, zorder=1)
        for y, name in enumerate(names):
            c = changes[name][key]
            if c["mean"] is None:
                continue
            kind = verdict_kind(c["verdict"], metric)
            colour = VERDICT_COLOURS.get(kind, "0.5")
            if c["low"] is not None and c["low"] <= c["high"]:
                ax.plot(
                    [c["low"] * metric.scale, c["high"] * metric.scale],
                    [y, y],
                    color=colour,
                    linewidth=2,
                    zorder=2,
                )
            ax.plot(c["mean"] * metric.scale, y, "o", color=colour, zorder=3)
        unit = " (pp)" if metric.scale == 100.0 else ""
        ax.set_title(f"Δ {metric.label}{unit}")
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    axes.flat[0].set_yticks(range(len(names)), names)
    axes.flat[0].invert_yaxis()
    handles = [
        plt.Line2D([], [], marker="o", color=colour, label=label)
        for label, colour in [*VERDICT_COLOURS.items(), ("undecided", "0.5")]
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False)
    fig.suptitle("Change against the baseline: corrected intervals; grey band: ±δ")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def verdict_kind(verdict: str, metric: Metric) -> str:
    """better, worse or equivalent in words common to every measure; else the verdict."""
    if verdict == metric.words[0]:
        return "better"
    if verdict == metric.words[1]:
        return "worse"
    return verdict


def _panels(plt, n: int, width: float, height: float):
    """A grid of up to four panels a row, sharing axes; the unused ones hidden."""
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), sharex=True, sharey=True, squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def learning_curves(history: pd.DataFrame, order: list[str], path: Path) -> None:
    """Train vs val data loss per epoch, one panel per variant; line = mean, band = sd over the
    seeds that reached the epoch."""
    plt, _ = pyplot()
    stats = history.groupby(["variant", "epoch"])[["train_loss", "val_loss"]].agg(["mean", "std"])
    fig, axes = _panels(plt, len(order), 3.1, 2.6)
    for ax, name in zip(axes.flat, order, strict=False):
        curves = stats.loc[name]
        for key, label, color in (
            ("train_loss", "train", "tab:blue"),
            ("val_loss", "val", "tab:red"),
        ):
            mean, sd = curves[(key, "mean")], curves[(key, "std")].fillna(0.0)
            ax.plot(curves.index, mean, color=color, label=label)
            ax.fill_between(curves.index, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
        ax.set_title(name)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("data loss (eval mode)")
    axes.flat[0].legend(title="split")
    fig.suptitle("Learning curves: train vs val loss (mean ± sd over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def gap_per_epoch(history: pd.DataFrame, order: list[str], path: Path) -> None:
    """Loss gap (val − train) per epoch, one line per variant."""
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(
        data=history, x="epoch", y="loss_gap", hue="variant", hue_order=order, errorbar="sd", ax=ax
    )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("loss gap = val loss − train loss")
    ax.set_title("Generalization gap per epoch (mean ± sd over seeds)")
    ax.legend(title="variant", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def final_gap(final_gaps: dict[str, dict[int, float]], path: Path) -> None:
    """Loss gap at the end of training per variant: mean ± sd over seeds, each seed a dot."""
    plt, sns = pyplot()
    rows = [
        {"variant": name, "seed": s, "loss gap": gap}
        for name, gaps in final_gaps.items()
        for s, gap in gaps.items()
    ]
    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.barplot(
        data=frame,
        x="variant",
        y="loss gap",
        errorbar="sd",
        color="tab:gray",
        alpha=0.6,
        ax=ax,
        capsize=0.2,
    )
    # swarmplot, not stripplot: its dots are placed without random jitter, so the figure is
    # the same file every time the same numbers come in.
    sns.swarmplot(data=frame, x="variant", y="loss gap", color="black", size=4, ax=ax)
    ax.set_title("Loss gap at the end of training (bar: mean ± sd; dots: seeds)")
    ax.set_ylabel("val loss − train loss")
    ax.tick_params(axis="x", rotation=30)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def weight_magnitudes(
    order: list[str], weights: Callable[[str], Iterable[dict[str, np.ndarray]]], path: Path
) -> None:
    """Histogram of log10 |w| of the kept models' linear weights: L1 piles weights near zero.

    Counted with numpy and drawn as steps: the models hold millions of weights, far too many
    rows for a data frame (seaborn's displot is slower: docs/performance.md)."""
    plt, _ = pyplot()
    edges = np.linspace(-7.0, 1.0, 61)  # log10 |w|; |w| < 1e-7 is counted at -7
    fig, axes = _panels(plt, len(order), 3.1, 2.4)
    for ax, name in zip(axes.flat, order, strict=False):
        counts = np.zeros(len(edges) - 1)
        for state in weights(name):
            for key, w in state.items():
                if key.endswith("weight") and w.ndim == 2:
                    logs = np.log10(np.maximum(np.abs(w.ravel()), 1e-7))
                    counts += np.histogram(np.clip(logs, edges[0], edges[-1]), edges)[0]
        ax.stairs(counts / counts.sum(), edges, fill=True, alpha=0.35, color="C0")
        ax.stairs(counts / counts.sum(), edges, color="C0")
        ax.set_title(name)
    for ax in axes[-1]:
        ax.set_xlabel("log10 |w|")
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of weights")
    fig.suptitle("Weight magnitudes of the kept models (all seeds; |w| < 1e-7 at -7)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
