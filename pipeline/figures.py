"""The report's figures, drawn from the train stages' outputs (seaborn's theme; per-epoch
statistics computed here, which is much faster than letting seaborn aggregate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .paths import Layout

if TYPE_CHECKING:
    from .report import VariantRuns

DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def draw_all(variants: list[VariantRuns], layout: Layout, out: Path) -> None:
    history = pd.concat([v.history for v in variants], ignore_index=True)
    order = [v.name for v in variants]
    learning_curves(history, order, out / "learning_curves.png")
    gap_per_epoch(history, order, out / "loss_gap.png")
    final_gap(variants, out / "final_gap.png")
    weight_magnitudes(variants, layout, out / "weight_magnitudes.png")


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
    plt, _ = _plt()
    stats = history.groupby(["variant", "epoch"])[["train_loss", "val_loss"]].agg(["mean", "std"])
    fig, axes = _panels(plt, len(order), 3.1, 2.6)
    for ax, name in zip(axes.flat, order, strict=False):
        curves = stats.loc[name]
        for key, label, color in (("train_loss", "train", "tab:blue"),
                                  ("val_loss", "val", "tab:red")):  # fmt: skip
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
    plt, sns = _plt()
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


def final_gap(variants: list[VariantRuns], path: Path) -> None:
    """Loss gap at the end of training per variant: mean ± sd over seeds, each seed a dot."""
    plt, sns = _plt()
    rows = [
        {"variant": v.name, "seed": s, "loss gap": gap}
        for v in variants
        for s, gap in v.per_seed("loss_gap_last").items()
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


def weight_magnitudes(variants: list[VariantRuns], layout: Layout, path: Path) -> None:
    """Histogram of log10 |w| of the kept models' linear weights: L1 piles weights near zero.

    Counted with numpy and drawn as steps: the models hold millions of weights, far too many
    rows for a data frame (seaborn's displot took ~10 s for the default study)."""
    from safetensors.numpy import load_file

    plt, _ = _plt()
    edges = np.linspace(-7.0, 1.0, 61)  # log10 |w|; |w| < 1e-7 is counted at -7
    fig, axes = _panels(plt, len(variants), 3.1, 2.4)
    for ax, v in zip(axes.flat, variants, strict=False):
        counts = np.zeros(len(edges) - 1)
        for run in v.runs:
            state = load_file(layout.models(v.name) / f"seed{run['seed']}" / "model.safetensors")
            for key, w in state.items():
                if key.endswith("weight") and w.ndim == 2:
                    logs = np.log10(np.maximum(np.abs(w.ravel()), 1e-7))
                    counts += np.histogram(np.clip(logs, edges[0], edges[-1]), edges)[0]
        ax.stairs(counts / counts.sum(), edges, fill=True, alpha=0.35, color="C0")
        ax.stairs(counts / counts.sum(), edges, color="C0")
        ax.set_title(v.name)
    for ax in axes[-1]:
        ax.set_xlabel("log10 |w|")
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of weights")
    fig.suptitle("Weight magnitudes of the kept models (all seeds; |w| < 1e-7 at -7)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
