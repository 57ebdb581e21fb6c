"""Markdown tables and the cells they hold, the same in every report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..metrics import Metric
from ..stats import PairedDifference


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """`mean ± sd`, or the mean alone where one seed leaves no sd."""
    return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def interval(diff: PairedDifference, metric: Metric, signed: bool = True) -> str:
    """`mean [low, high]` in the metric's digits and scale (accuracy: % and points)."""
    return diff.describe(metric.digits, metric.scale, signed)
