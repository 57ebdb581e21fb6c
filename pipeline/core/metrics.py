"""The metric registry: every number a run reports, with its label, the direction that is
better, and how it is shown. The outputs, the analysis and the reports take their metrics from
here, each view a selection of keys below.

Definitions (see the README): losses are the data loss (cross-entropy, eval mode, no penalty)
over a whole split; loss gap = val loss − train loss, accuracy gap = train − val accuracy;
"best" is the epoch of lowest val loss, "last" the last epoch trained; test scores use the
best epoch's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: Literal["lower", "higher"] | None = None  # None: neither is better
    digits: int = 3
    scale: float = 1.0  # 100: shown in % (values) and percentage points (changes)
    words: tuple[str, str] = ("better", "worse")  # a clear change the better / worse way

    @property
    def title(self) -> str:
        """The label with its unit, for a table column or a figure axis."""
        return f"{self.label} (%)" if self.scale == 100.0 else self.label


_ALL = (
    Metric("best_val_loss", "val loss (best epoch)", "lower"),
    Metric("best_val_accuracy", "val accuracy (best epoch)", "higher", digits=2, scale=100.0),
    Metric("best_epoch", "best epoch", digits=1),
    Metric("train_loss_last", "train loss (last epoch)", "lower"),
    Metric("val_loss_last", "val loss (last epoch)", "lower"),
    Metric(
        "loss_gap_last",
        "loss gap (last epoch)",
        "lower",
        words=("closes the gap", "widens the gap"),
    ),
    Metric("accuracy_gap_last", "accuracy gap (last epoch)", "lower"),
    Metric("loss_gap_best", "loss gap (best epoch)", "lower"),
    Metric("accuracy_gap_best", "accuracy gap (best epoch)", "lower"),
    Metric("test_loss", "test loss", "lower"),
    # test loss − train loss, both with the weights of the best epoch: the gap measured on the
    # test split, for a choice made on validation (the tuned study), whose val loss it biases
    Metric("test_gap", "test loss gap", "lower", words=("closes the gap", "widens the gap")),
    Metric("test_accuracy", "test accuracy", "higher", digits=2, scale=100.0),
    Metric("near_zero_fraction", "near-zero weights"),
    Metric("weight_norm", "weight norm"),
)
METRICS = {m.key: m for m in _ALL}

# metrics/<variant>/summary.json: the train stage's means over seeds, to read (not a DVC metric).
VARIANT_SUMMARY = (
    "best_val_loss",
    "best_epoch",
    "loss_gap_best",
    "accuracy_gap_best",
    "loss_gap_last",
    "accuracy_gap_last",
    "test_loss",
    "test_accuracy",
    "near_zero_fraction",
    "weight_norm",
)
# reports/summary.json: each variant's mean and sd.
REPORT_SUMMARY = (
    "train_loss_last",
    "val_loss_last",
    "loss_gap_last",
    "accuracy_gap_last",
    "loss_gap_best",
    "best_val_loss",
    "test_accuracy",
    "near_zero_fraction",
)
# Each variant against the baseline, paired by seed.
COMPARED = ("loss_gap_last", "best_val_loss", "test_accuracy")
# A technique tuned on validation within each seed, against the baseline: test measures only.
TUNED = ("test_gap", "test_loss", "test_accuracy")
# A strength path, against the strength.
PATH_METRICS = ("best_val_loss", "train_loss_last", "loss_gap_last", "test_accuracy")
# `compare`: across studies grouped by a logged parameter.
ACROSS_STUDIES = ("loss_gap_last", "test_accuracy")
# Per epoch, averaged over seeds into metrics/<variant>/curves.csv (DVC plots).
CURVES = ("train_loss", "val_loss", "loss_gap", "train_accuracy", "val_accuracy")
