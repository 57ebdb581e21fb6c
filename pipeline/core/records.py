"""A run's record: what it was, what it measured, and where it is in MLflow; and a run that
did not finish. What travels from a run to the outputs and on to the reports; no torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def run_name(variant: str, seed: int) -> str:
    """A run's name in MLflow and in the study's files: `<variant>-seed<k>`."""
    return f"{variant}-seed{seed}"


EPOCH_SECONDS = "epoch_seconds"  # a timing: logged to MLflow, kept out of the results
RUN_SECONDS = "train_seconds"


@dataclass(frozen=True)
class RunRecord:
    """A finished run: what it was, what it measured, and where it is in MLflow.

    `summary` and `history` hold results only, the same numbers whenever the run is repeated;
    what differs from one repetition to the next (the MLflow run id, each epoch's seconds) is
    kept apart, so that the outputs DVC hashes do not change when nothing else did.
    `model_files` is the content of `models/<variant>/seed<k>/` on its way to the outputs.
    `processor` is the CPU's model or the GPU's name (`device.processor`); records written
    before it was kept have none.
    """

    variant: str
    seed: int
    hyperparameters: dict[str, Any]
    device: str
    stopped_early: bool
    summary: dict[str, float]
    history: list[dict[str, float]]  # per epoch, from epoch 1
    processor: str = ""
    run_id: str = ""
    epoch_seconds: list[float] = field(default_factory=list)
    model_files: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def run_name(self) -> str:
        return run_name(self.variant, self.seed)

    def history_rows(self, timings: bool = False) -> list[dict[str, Any]]:
        """One row per epoch, as in history.csv (with each epoch's seconds if `timings`)."""
        rows = []
        for epoch, row in enumerate(self.history, start=1):
            rows.append({"variant": self.variant, "seed": self.seed, "epoch": epoch, **row})
            if timings:
                rows[-1][EPOCH_SECONDS] = self.epoch_seconds[epoch - 1]
        return rows

    def to_json(self) -> dict[str, Any]:
        """The run's results, as one entry of `runs.json` (the history goes apart)."""
        return {
            "variant": self.variant,
            "seed": self.seed,
            "device": self.device,
            "processor": self.processor,
            "stopped_early": self.stopped_early,
            "hyperparameters": self.hyperparameters,
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], history: list[dict[str, float]]) -> RunRecord:
        return cls(
            str(entry["variant"]),
            int(entry["seed"]),
            dict(entry["hyperparameters"]),
            str(entry["device"]),
            bool(entry["stopped_early"]),
            dict(entry["summary"]),
            history,
            str(entry.get("processor", "")),
        )

    def provenance(self) -> dict[str, Any]:
        """What is not a result: the MLflow run and the time it took."""
        return {
            "run_name": self.run_name,
            "run_id": self.run_id,
            RUN_SECONDS: float(np.sum(self.epoch_seconds)),
            EPOCH_SECONDS: self.epoch_seconds,
        }

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            **self.to_json(),
            "history": self.history,
            **self.provenance(),
            "model_files": dict(self.model_files),
        }

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> RunRecord:
        record = cls.from_json(saved, saved["history"])
        return dataclasses.replace(
            record,
            run_id=saved["run_id"],
            epoch_seconds=saved[EPOCH_SECONDS],
            model_files=saved["model_files"],
        )


@dataclass(frozen=True)
class MissingRun:
    """A run that did not finish, and why. `diverged`: its loss became NaN or infinite, a
    result about the variant (the report gives it no verdict); otherwise the run was lost
    (its worker or node died, an error), which says nothing about the variant."""

    variant: str
    seed: int
    run_name: str
    reason: str
    diverged: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> MissingRun:
        return cls(**entry)
