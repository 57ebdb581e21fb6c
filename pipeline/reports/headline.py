"""The few numbers a study is compared by across DVC experiments: `reports/metrics.json`.

`dvc exp show` makes a column of every number of every declared metrics file, so the report
declares only these, per variant; everything else stays in `reports/summary.json`:

- `best_val_loss`, `loss_gap` (at the last epoch trained), `test_accuracy`: means over seeds;
- `gap_verdict`: the verdict on the loss gap against the baseline as a direction, +1 where the
  variant closes the gap, -1 where it widens it, 0 where the two are equivalent (or
  identical); absent where the verdict is undecided (or withheld), which has no direction (the
  baseline has none either).
"""

from __future__ import annotations

from typing import Any

from ..analysis.comparisons import EQUIVALENT, IDENTICAL
from ..core.metrics import METRICS

GAP = "loss_gap_last"
MEANS = {"best_val_loss": "best_val_loss", "loss_gap": GAP, "test_accuracy": "test_accuracy"}


def direction(verdict: str) -> int | None:
    closes, widens = METRICS[GAP].words
    return {closes: 1, widens: -1, EQUIVALENT: 0, IDENTICAL: 0}.get(verdict)


def headline(summary: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    """Per variant of the report's summary: its means, and its gap verdict's direction."""
    result: dict[str, dict[str, float | int]] = {}
    for name, entry in summary["variants"].items():
        numbers: dict[str, float | int] = {
            key: entry[source]["mean"] for key, source in MEANS.items()
        }
        change = entry.get("vs_baseline", {}).get(GAP)
        sign = direction(change["verdict"]) if change else None
        if sign is not None:
            numbers["gap_verdict"] = sign
        result[name] = numbers
    return result
