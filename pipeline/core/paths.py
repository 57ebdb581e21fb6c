"""Every path the study reads or writes, relative to one project root. Nothing happens at
import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import Strength, strength_text


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
    """The study's files under a root.

    DVC hashes the stage outputs (`data/prepared/`, `models/`, `metrics/`, `sweeps/`), so
    they hold results only: the same bytes whenever the same settings are trained again on the
    same machine. What differs from one repetition to the next (MLflow run ids, seconds per
    epoch) goes to `logs/`, which nothing hashes.
    """

    root: Path

    # --- prepare ---
    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def raw(self) -> Path:
        """`data/raw/`: the input of `prepare` in dvc.yaml, where a user's `.npz` and the
        torchvision datasets go, so that DVC reruns `prepare` when a file there changes."""
        return self.root / "data" / "raw"

    # --- train: one folder per variant in models/ and in metrics/ ---
    def models(self, variant: str) -> Path:
        return self.root / "models" / variant

    def model_folder(self, variant: str, seed: int) -> Path:
        """A seed's kept weights: `model.safetensors`, `architecture.json` and the inputs'
        `normalization.safetensors`."""
        return self.models(variant) / f"seed{seed}"

    def metrics(self, variant: str) -> Path:
        return self.root / "metrics" / variant

    def checkpoints(self, variant: str) -> Path:
        return self.root / "checkpoints" / variant

    def run_log(self, variant: str) -> Path:
        """The MLflow run and the seconds of each run of a variant (not hashed)."""
        return self.root / "logs" / "train" / f"{variant}.json"

    @property
    def staging_prefix(self) -> str:
        """Temporary folders in the root in which a variant's outputs are put together."""
        return ".train-"

    # --- seeds added in rounds: rounds/<variant>/seed<k>/, and what the rounds did ---
    @property
    def rounds(self) -> Path:
        return self.root / "rounds"

    @property
    def rounds_record(self) -> Path:
        """Each variant's seeds and why it stopped, and the verdicts read at each look."""
        return self.rounds / "rounds.json"

    def round_seeds(self, variant: str) -> Path:
        return self.rounds / variant

    def round_seed(self, variant: str, seed: int) -> Path:
        """A seed added by the rounds: `record.json` (its record, history included) and its
        kept weights, as in `models/<variant>/seed<k>/`."""
        return self.round_seeds(variant) / f"seed{seed}"

    def round_log(self, variant: str, seed: int) -> Path:
        """The MLflow run and the seconds of a seed added by the rounds (not hashed)."""
        return self.root / "logs" / "rounds" / variant / f"seed{seed}.json"

    # --- strength paths ---
    @property
    def sweeps(self) -> Path:
        return self.root / "sweeps"

    def sweep_point(self, technique: str, strength: Strength) -> Path:
        """The folder of one point of a strength path: a `seed<k>.json` per seed."""
        return self.sweeps / technique / strength_text(strength)

    def sweep_log(self, point: Path) -> Path:
        """The MLflow run and the seconds of the sweep point written to `point` (not hashed):
        under `logs/sweeps/` for a point under `sweeps/` (`logs/tuned-rounds/` under
        `tuned-rounds/`), else beside it."""
        point = point.absolute()
        for folder in (self.sweeps, self.tuned_rounds):
            if point.is_relative_to(folder.absolute()):
                return self.root / "logs" / folder.name / point.relative_to(folder.absolute())
        return point.with_name(f"{point.stem}.log.json")

    # --- seeds the tuned study's rounds add: every strength of a path, and the baseline ---
    @property
    def tuned_rounds(self) -> Path:
        return self.root / "tuned-rounds"

    def tuned_round_point(self, technique: str | None, strength: Strength) -> Path:
        """Where the rounds' seeds of one point of a path go (technique None: the baseline's),
        a `seed<k>.json` per seed, as under `sweeps/`."""
        if technique is None:
            return self.tuned_rounds / "baseline"
        return self.tuned_rounds / technique / strength_text(strength)

    @property
    def tuned_rounds_record(self) -> Path:
        """Each technique's seeds and why it stopped, and the verdicts read at each look."""
        return self.tuned_rounds / "rounds.json"

    # --- reports ---
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def gap_report(self) -> Path:
        return self.reports / "gap_report.md"

    @property
    def summary(self) -> Path:
        return self.reports / "summary.json"

    @property
    def per_seed(self) -> Path:
        """Every value the verdicts rest on, per run: recheck a verdict from the repository."""
        return self.reports / "per_seed.csv"

    @property
    def headline(self) -> Path:
        """The report's DVC metrics: the few numbers compared across experiments."""
        return self.reports / "metrics.json"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"

    @property
    def sweep_reports(self) -> Path:
        return self.reports / "sweep"

    @property
    def tuned(self) -> Path:
        """The tuned study's choice and report (`stages/tuned.py`)."""
        return self.reports / "tuned"

    def compare(self, by: str) -> Path:
        return self.reports / "compare" / by
