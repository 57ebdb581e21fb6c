"""The report's figures, drawn with seaborn from the train stages' outputs."""

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


def learning_curves(history: pd.DataFrame, order: list[str], path: Path) -> None:
    """Train vs val data loss per epoch, one panel per variant; line = mean, band = sd."""
    plt, sns = _plt()
    long = history.melt(
        id_vars=["variant", "seed", "epoch"],
        value_vars=["train_loss", "val_loss"],
        var_name="split",
        value_name="loss",
    )
    long["split"] = long["split"].map({"train_loss": "train", "val_loss": "val"})
    grid = sns.relplot(
        data=long,
        x="epoch",
        y="loss",
        hue="split",
        col="variant",
        col_order=order,
        col_wrap=min(4, len(order)),
        kind="line",
        errorbar="sd",
        height=2.6,
        aspect=1.2,
        palette={"train": "tab:blue", "val": "tab:red"},
    )
    grid.set_titles("{col_name}")
    grid.set_axis_labels("epoch", "data loss (eval mode)")
    grid.figure.suptitle("Learning curves: train vs val loss (mean ± sd over seeds)", y=1.02)
    grid.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(grid.figure)


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
    """Histogram of log10 |w| of the kept models' linear weights: L1 piles weights near zero."""
    from safetensors.numpy import load_file

    plt, sns = _plt()
    frames = []
    for v in variants:
        for run in v.runs:
            state = load_file(layout.models(v.name) / f"seed{run['seed']}" / "model.safetensors")
            weights = np.concatenate(
                [w.ravel() for k, w in state.items() if k.endswith("weight") and w.ndim == 2]
            )
            frames.append(
                pd.DataFrame(
                    {
                        "variant": v.name,
                        "log10 |w|": np.log10(np.maximum(np.abs(weights), 1e-7)),
                    }
                )
            )
    data = pd.concat(frames, ignore_index=True)
    grid = sns.displot(
        data=data,
        x="log10 |w|",
        col="variant",
        col_order=[v.name for v in variants],
        col_wrap=min(4, len(variants)),
        bins=60,
        stat="probability",
        element="step",
        height=2.4,
        aspect=1.3,
        common_norm=False,
    )
    grid.set_titles("{col_name}")
    grid.figure.suptitle(
        "Weight magnitudes of the kept models (all seeds; |w| < 1e-7 at -7)", y=1.02
    )
    grid.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(grid.figure)
