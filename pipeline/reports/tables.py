"""Markdown tables and the cells they hold, the same in every report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..analysis.comparisons import Comparison
from ..analysis.stats import PairedDifference
from ..core.metrics import Metric


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


def magnitude(value: float, metric: Metric, unit: bool = False) -> str:
    """`value` in the metric's digits and scale, unsigned; with `unit`, " pp" after a change of
    a percentage."""
    text = f"{abs(value) * metric.scale:.{metric.digits}f}"
    return f"{text} pp" if unit and metric.scale == 100.0 else text


def detectable_text(c: Comparison, unit: bool = False) -> str | None:
    """`±x`, the difference an undecided comparison's seeds would detect; None for any other
    verdict."""
    if math.isnan(c.detectable):  # NaN unless undecided (`Comparison.detectable`)
        return None
    return f"±{magnitude(c.detectable, c.metric, unit)}"


def verdict_cell(c: Comparison) -> str:
    """The verdict as a table cell: an undecided one with the difference its seeds would
    detect."""
    shown = detectable_text(c)
    return c.verdict if shown is None else f"undecided (detects {shown})"
