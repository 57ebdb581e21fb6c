"""The errors a user can act on. Each carries one line that names the key, file or epoch."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem: a key of params.yaml or a command-line value."""


class DataError(RuntimeError):
    """A dataset or prepared-data file that cannot be used, and what to do about it."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN, infinite or far above chance; carries the epoch and the seed for
    the record."""

    def __init__(self, epoch: int, reason: str, seed: int | None = None):
        super().__init__(f"training diverged at epoch {epoch}: {reason}")
        self.epoch = epoch
        self.reason = reason
        self.seed = seed

    def __reduce__(self):  # so it crosses from a worker process intact
        return (TrainingDiverged, (self.epoch, self.reason, self.seed))


class RunsDiverged(RuntimeError):
    """Seeds of a stage whose loss diverged (each its own FAILED run; the others trained on to
    their own end); the stage writes no output."""


class MetricsLost(RuntimeError):
    """Per-epoch metrics of a run did not reach the tracking store: the run is not FINISHED."""


class StudyIncomplete(RuntimeError):
    """Runs of a study did not finish (their tasks failed); names them."""
