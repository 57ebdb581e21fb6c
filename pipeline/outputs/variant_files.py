"""A variant's outputs, written once every run has finished:
- `models/<variant>/seed<k>/`: `model.safetensors` and `architecture.json` (best-epoch weights),
  `normalization.safetensors` (what its inputs need first);
- `metrics/<variant>/history.csv`: one row per (seed, epoch);
- `metrics/<variant>/runs.json`: per seed, its hyperparameters and summary (`RunRecord`);
- `metrics/<variant>/summary.json` and `curves.csv`: means over seeds (`curves.csv`: a DVC plot);
- `metrics/<variant>/missing.json`: runs that did not finish (a Ray study only).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import Params
from ..core.errors import DataError
from ..core.files import csv_text, json_text, replace_dir, write_atomic
from ..core.metrics import CURVES, VARIANT_SUMMARY
from ..core.paths import Layout
from ..core.records import EPOCH_SECONDS, MissingRun, RunRecord, run_name
from ..core.signals import signals_held
from ..core.spec import RunSpec, run_specs
from .round_files import read_round_seeds


@dataclass(frozen=True)
class VariantRuns:
    """What the train stage (or a Ray study) left for one variant."""

    name: str
    records: list[RunRecord]  # the finished runs, by seed
    missing: list[MissingRun] = field(default_factory=list)

    @property
    def diverged_seeds(self) -> list[int]:
        return sorted(m.seed for m in self.missing if m.diverged)

    def per_seed(self, key: str) -> dict[int, float]:
        return {r.seed: float(r.summary[key]) for r in self.records}

    def mean_sd(self, key: str) -> tuple[float, float]:
        values = np.array(list(self.per_seed(key).values()))
        sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return float(values.mean()), sd


def write_variant(
    layout: Layout,
    variant: str,
    records: Sequence[RunRecord],
    missing: Sequence[MissingRun] = (),
) -> None:
    """Swap in `models/<variant>/` and `metrics/<variant>/` from the variant's finished runs
    (each carrying its model files), and log their MLflow runs and timings. In seed order,
    whichever order the executor finished them in, so the same runs give the same bytes."""
    records = sorted(records, key=lambda r: r.seed)
    missing = sorted(missing, key=lambda m: m.seed)
    staging = Path(tempfile.mkdtemp(prefix=f"{layout.staging_prefix}{variant}-", dir=layout.root))
    try:
        models, metrics = staging / "models", staging / "metrics"
        for record in records:
            folder = models / f"seed{record.seed}"
            folder.mkdir(parents=True)
            for name, content in record.model_files.items():
                (folder / name).write_bytes(content)
        models.mkdir(exist_ok=True)
        metrics.mkdir()
        if records:
            history = [row for r in records for row in r.history_rows()]
            (metrics / "history.csv").write_text(csv_text(history))
            (metrics / "curves.csv").write_text(csv_text(mean_curves(history)))
            (metrics / "summary.json").write_text(json_text(seed_mean(records)))
        (metrics / "runs.json").write_text(json_text([r.to_json() for r in records]))
        if missing:
            (metrics / "missing.json").write_text(json_text([m.to_json() for m in missing]))
        for target in (layout.models(variant), layout.metrics(variant)):
            target.parent.mkdir(parents=True, exist_ok=True)
        with signals_held():  # both folders or neither: a signal waits for the two swaps
            replace_dir(models, layout.models(variant))
            replace_dir(metrics, layout.metrics(variant))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_atomic(layout.run_log(variant), json_text([r.provenance() for r in records]))


class LiveHistory:
    """`metrics/<variant>/history.csv` while the variant trains: a row per seed and epoch as
    each ends, so `dvc plots show` and DVC's VS Code extension draw the seeds' curves as they
    grow. Only where the variant has no finished outputs (`dvc repro` removes a stage's
    outputs before it runs it), so it never overwrites a result; `write_variant` replaces it
    with the finished history, `discard` removes it after a failure."""

    def __init__(self, layout: Layout, variant: str):
        self.folder = layout.metrics(variant)
        self.path = self.folder / "history.csv"
        self.active = not (self.folder / "runs.json").exists()
        self.columns: list[str] | None = None

    def __call__(self, spec: RunSpec, epoch: int, row: dict[str, float]) -> None:
        if not self.active:
            return
        line = {"variant": spec.variant_name, "seed": spec.seed, "epoch": epoch, **row}
        line.pop(EPOCH_SECONDS, None)  # a timing, not a result: history.csv has none
        if self.columns is None:
            self.columns = list(line)
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path.write_text(",".join(self.columns) + "\n")
        with self.path.open("a") as f:
            f.write(",".join(str(line.get(c, "")) for c in self.columns) + "\n")

    def discard(self) -> None:
        """The rows of a training that failed: gone, and the folder if nothing else is in it."""
        if self.active and self.columns is not None:
            self.path.unlink(missing_ok=True)
            with suppress(OSError):  # not empty: another file is there
                self.folder.rmdir()


def mean_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch, the mean over the seeds that reached it (early stopping ends seeds apart)."""
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], []).append(row)
    return [
        {
            "epoch": epoch,
            "n_seeds": len(group),
            **{k: float(np.mean([r[k] for r in group])) for k in CURVES},
        }
        for epoch, group in sorted(by_epoch.items())
    ]


def seed_mean(records: Sequence[RunRecord]) -> dict[str, Any]:
    """A variant's summary: each summary value's mean over seeds, and n."""
    means = {k: float(np.mean([r.summary[k] for r in records])) for k in VARIANT_SUMMARY}
    return {"n_seeds": len(records), **means}


def read_variant(
    layout: Layout, params: Params, name: str, added: Sequence[int] = ()
) -> VariantRuns:
    """A variant's finished runs (its train stage's, and the seeds `added` by the rounds) and,
    of the study's seeds, those that did not finish. Every run must have been trained with the
    settings params.yaml holds now: a report must not name a variant by settings its runs did
    not have."""
    seeds = params.train.seeds
    folder = layout.metrics(name)
    runs_path, history_path = folder / "runs.json", folder / "history.csv"
    missing_path = folder / "missing.json"
    entries = json.loads(runs_path.read_text()) if runs_path.is_file() else None
    missing = (
        [MissingRun.from_json(m) for m in json.loads(missing_path.read_text())]
        if (missing_path.is_file())
        else []
    )
    # missing.json is not a DVC output: after `dvc checkout` of a complete stage it may still
    # lie beside it. Only seeds of the study that have no finished run count as missing.
    finished = {int(e["seed"]) for e in entries or []}
    missing = [m for m in missing if m.seed in seeds and m.seed not in finished]
    if entries == [] and missing:  # every run of the variant failed
        return VariantRuns(name, [], missing)
    for path in (runs_path, history_path):
        if not path.is_file():
            raise DataError(
                f"{path}: missing; train the variant first (`python -m pipeline train "
                f"--variant {name}` or `dvc repro`)"
            )
    history = read_history(history_path)
    records = [RunRecord.from_json(e, history.get(int(e["seed"]), [])) for e in entries or []]
    stored = read_round_seeds(layout, name)
    for seed in added:
        if seed not in stored:
            raise DataError(
                f"{layout.round_seed(name, seed)}: missing; run the rounds again "
                "(`python -m pipeline rounds` or `dvc repro`)"
            )
        records.append(stored[seed][1])
    for record in records:
        [spec] = run_specs(params, name, [record.seed])
        if record.hyperparameters != spec.hyperparameters():
            raise DataError(
                f"{runs_path}: seed {record.seed} was trained with other settings than "
                f"params.yaml holds; train the variant again (`dvc repro`)"
            )
    return VariantRuns(name, records, missing)


def run_id_of(layout: Layout, variant: str, seed: int) -> str | None:
    """The MLflow run of a seed of `variant`, as the training that made its outputs here
    recorded it in `logs/`; None when these outputs were made elsewhere (a DVC cache)."""
    paths = (layout.round_log(variant, seed), layout.run_log(variant))
    for path in paths:
        if path.is_file():
            entries = json.loads(path.read_text())
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry.get("run_name") == run_name(variant, seed) and entry.get("run_id"):
                    return str(entry["run_id"])
    return None


def read_history(path: Path) -> dict[int, list[dict[str, float]]]:
    """history.csv by seed: each epoch's row of results, in epoch order."""
    by_seed: dict[int, list[tuple[int, dict[str, float]]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            seed, epoch = int(row.pop("seed")), int(row.pop("epoch"))
            row.pop("variant")
            by_seed.setdefault(seed, []).append((epoch, {k: float(v) for k, v in row.items()}))
    return {
        seed: [r for _, r in sorted(rows, key=lambda x: x[0])] for seed, rows in by_seed.items()
    }


def read_weights(layout: Layout, variant: str, seed: int) -> dict[str, np.ndarray]:
    """A seed's kept weights, by parameter name (safetensors: nothing is unpickled), from its
    train stage or from the rounds."""
    from safetensors.numpy import load_file

    folder = layout.model_folder(variant, seed)
    if not folder.is_dir():
        folder = layout.round_seed(variant, seed)
    return load_file(folder / "model.safetensors")
