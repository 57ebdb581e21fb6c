"""Where the study reads and writes, relative to one project root. Nothing happens at import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def project_root() -> Path:
    """The folder holding `params.yaml`: the working directory, as for `dvc` and `mlflow run`."""
    return Path.cwd()


def tracking_root() -> Path:
    """Where `mlflow.db` and `mlruns/` live.

    A queued or temporary DVC experiment runs in a copy of the repository under
    `.dvc/tmp/exps/`; DVC points `DVC_ROOT` at the real root so the runs outlive the copy.
    """
    return Path(os.environ.get("DVC_ROOT") or project_root()).resolve()


@dataclass(frozen=True)
class Layout:
    """The study's files under a root. Stage outputs are the folders DVC tracks."""

    root: Path

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    def models(self, variant: str) -> Path:
        return self.root / "models" / variant

    def checkpoints(self, variant: str) -> Path:
        return self.root / "checkpoints" / variant

    def metrics(self, variant: str) -> Path:
        return self.root / "metrics" / variant

    @property
    def sweeps(self) -> Path:
        return self.root / "sweeps"

    def sweep_point(self, technique: str, strength: float, seed: int) -> Path:
        return self.sweeps / technique / f"{strength:g}-seed{seed}.json"

    @property
    def sweep_reports(self) -> Path:
        return self.root / "reports" / "sweep"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"
