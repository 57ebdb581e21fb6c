"""The reports' figures: matplotlib with seaborn's theme (`pyplot`), and the figures of the
strength paths and of `compare`. Each takes plain numbers and writes one PNG; the gap report's
figures are `gap_figures`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def strength_paths(paths: dict[str, dict], titles: list[str], path: Path) -> None:
    """Rows: techniques; columns: the path metrics. Line: mean over seeds; band: min to max
    over seeds; dashed line and grey band: the baseline (strength 0); dotted red: the strength
    of lowest val loss. Per technique, `paths` holds `strengths` (those tried), `values`
    (per metric, an array (strengths, seeds) in the metric's scale), `baseline` (per metric,
    an array (seeds,)), `best` (a strength, or None for the baseline) and `log` (the axis)."""
    plt, _ = pyplot()
    rows, cols = len(paths), len(titles)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for r, (technique, p) in enumerate(paths.items()):
        xs = np.array(p["strengths"])
        for c, (values, base) in enumerate(zip(p["values"], p["baseline"], strict=True)):
            ax = axes[r][c]
            ax.plot(xs, values.mean(axis=1), marker="o", color="tab:blue")
            ax.fill_between(
                xs, values.min(axis=1), values.max(axis=1), color="tab:blue", alpha=0.2, lw=0
            )
            ax.axhline(base.mean(), color="black", ls="--", lw=1, label="baseline (strength 0)")
            ax.axhspan(base.min(), base.max(), color="black", alpha=0.07, lw=0)
            if p["best"] is not None:
                ax.axvline(p["best"], color="tab:red", lw=0.8, ls=":")
            if p["log"]:
                ax.set_xscale("log")
            ax.set_xlabel(technique)
            if r == 0:
                ax.set_title(titles[c])
    axes[0][0].legend(fontsize="small")
    fig.suptitle(
        "Strength paths: mean over seeds (band: min–max); dotted red: lowest val loss", y=1.0
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def across_groups(
    by: str,
    groups: list[str],
    panels: list[tuple[str, dict[str, list[tuple[int, float, float]]], bool]],
    path: Path,
) -> None:
    """Each variant's mean against the grouping value, with error bars (the 95 % t-interval of
    the mean over seeds). `panels`: (title, per variant [(group index, mean, half-width)],
    whether to draw the zero line), in the metric's scale."""
    plt, _ = pyplot()
    numeric = all(_is_number(g) for g in groups)
    xs = [float(g) for g in groups] if numeric else list(range(len(groups)))
    variants = list(dict.fromkeys(name for _, series, _ in panels for name in series))
    # Each variant a little to the side, so that the error bars do not hide each other.
    spread = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
    dodge = 0.25 * spread / max(1, len(xs) - 1) / max(1, len(variants))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2))
    for ax, (title, series, zero_line) in zip(axes, panels, strict=True):
        for i, name in enumerate(variants):
            points = series.get(name, [])
            shift = (i - (len(variants) - 1) / 2) * dodge
            x = np.array([xs[g] for g, _, _ in points]) + shift
            mean = np.array([m for _, m, _ in points])
            half = np.array([h for _, _, h in points])
            ax.errorbar(x, mean, yerr=half, marker="o", capsize=3, label=name, color=f"C{i % 10}")
        ax.set_xlabel(by)
        ax.set_xticks(xs, groups)
        if zero_line:
            ax.axhline(0, color="black", lw=0.8)
        ax.set_title(title)
    axes[-1].legend(title="variant", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(f"Across {by}: mean over seeds with 95 % intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
