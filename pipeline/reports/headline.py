"""The numbers a study is compared by across DVC experiments: `reports/metrics.json`.

`dvc exp show` makes a column of every number of every declared metrics file, and a terminal
of 120 columns holds the experiment, its time, the parameters that changed and only about
five more. So the report declares one number per variant, the question the study answers:
`gap.<variant>`, the mean over seeds of the loss gap (val − train loss) at the last epoch
trained. With `--only-changed`, an experiment that changes one variant shows that variant's
gap beside the parameter it changed. Verdicts, intervals and every other statistic stay in
`reports/summary.json` and the gap report: a verdict depends on every seed and variant of the
study and is read with its interval, not as a column.
"""

from __future__ import annotations

from typing import Any

GAP = "loss_gap_last"


def headline(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per variant of the report's summary, its mean loss gap."""
    return {"gap": {name: entry[GAP]["mean"] for name, entry in summary["variants"].items()}}
