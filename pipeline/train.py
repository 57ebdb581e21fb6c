"""The `train` stage: every seed of one variant, each seed one MLflow run.

Outputs, written to temporary folders and swapped in only when every seed has finished, so
DVC never takes a half-written folder for a result:
- `models/<variant>/seed<k>/model.safetensors` and `architecture.json` (best-epoch weights);
- `metrics/<variant>/history.csv`: one row per (seed, epoch);
- `metrics/<variant>/runs.json`: per seed, the summary, hyperparameters and MLflow run id;
- `metrics/<variant>/summary.json`: means over seeds (the stage's DVC metrics).
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from torch import nn

from .atomic import replace_dir
from .checkpoint import fingerprint, load_checkpoint, save_checkpoint
from .config import Params
from .errors import ConfigError, TrainingDiverged
from .model import build_mlp
from .paths import Layout
from .prepare import Prepared, load_prepared
from .side_by_side import WorkerPlan, plan_workers, run_jobs
from .spec import RunSpec, run_specs
from .trainer import DeviceData, RunResult, architecture_of, resolve_device, train

# Summary metrics averaged over seeds into the stage's DVC metrics file.
SUMMARY_KEYS = (
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

# Given explicitly: MLflow's inference of a model's requirements costs seconds per run.
PIP_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}"]

CURVE_KEYS = ("train_loss", "val_loss", "loss_gap", "train_accuracy", "val_accuracy")


def data_hyperparameters(prepared: Prepared) -> dict[str, Any]:
    """The data settings every run records next to its own hyperparameters."""
    meta = prepared.meta
    return {
        "dataset": meta["dataset"],
        "n_train": meta["sizes"]["train"],
        "n_val": meta["sizes"]["val"],
        "label_noise": meta["label_noise"],
        "split_seed": meta["split_seed"],
    }


def save_weights(result: RunResult, spec: RunSpec, folder: Path) -> None:
    """State dict as safetensors plus the architecture as JSON: loadable without unpickling."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    arch = {
        "architecture": result.architecture.to_json(),
        "hyperparameters": spec.hyperparameters(),
    }
    (folder / "architecture.json").write_text(json.dumps(arch, indent=2) + "\n")


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def history_rows(spec: RunSpec, result: RunResult) -> list[dict[str, Any]]:
    return [
        {"variant": spec.variant_name, "seed": spec.seed, "epoch": epoch, **row}
        for epoch, row in enumerate(result.history, start=1)
    ]


def mean_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per epoch, the mean over the seeds that reached it (early stopping ends seeds apart)."""
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], []).append(row)
    return [
        {
            "epoch": epoch,
            "n_seeds": len(group),
            **{k: float(np.mean([r[k] for r in group])) for k in CURVE_KEYS},
        }
        for epoch, group in sorted(by_epoch.items())
    ]


def seed_mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The DVC metrics of a variant: each summary value's mean over seeds, and n."""
    means = {k: float(np.mean([r["summary"][k] for r in runs])) for k in SUMMARY_KEYS}
    return {"n_seeds": len(runs), **means}


class EpochReporter:
    """A progress bar over epochs on a terminal (one run at a time); one plain line per epoch
    otherwise."""

    def __init__(self, spec: RunSpec, live_bar: bool = True):
        self.spec = spec
        self.bar = None
        if live_bar and sys.stderr.isatty():
            self.bar = click.progressbar(
                length=spec.train.epochs, label=f"{spec.run_name:>20}", file=sys.stderr
            )
            self.bar.__enter__()

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            return
        click.echo(
            f"{self.spec.run_name} epoch {epoch}/{self.spec.train.epochs}: "
            f"train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
            f"gap {row['loss_gap']:+.4f} val_acc {row['val_accuracy']:.4f}",
            err=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@dataclass(frozen=True)
class Checkpoints:
    """Where a variant's seeds keep their checkpoints, and what they must have been made with.

    While a seed trains, its file holds the training state of its last checkpoint; once it has
    finished, its result, until the stage has written its outputs and deletes the folder.
    """

    folder: Path | None  # None: checkpointing off
    fingerprint: str
    every: int

    def path(self, seed: int) -> Path:
        assert self.folder is not None
        return self.folder / f"seed{seed}.pt"

    def load(self, seed: int) -> dict[str, Any] | None:
        if self.folder is None or not self.path(seed).is_file():
            return None
        payload = load_checkpoint(self.path(seed))
        if payload["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"{self.path(seed)} was made with other settings than params.yaml now holds; "
                "train without --resume to start over"
            )
        return payload

    def save_progress(self, seed: int, run_id: str, state: dict[str, Any]) -> None:
        if self.folder is not None:
            payload = {"fingerprint": self.fingerprint, "run_id": run_id, "done": False}
            save_checkpoint(self.path(seed), {**payload, "state": state})

    def save_done(self, seed: int, run_id: str, result: RunResult) -> None:
        if self.folder is not None:
            save_checkpoint(
                self.path(seed),
                {
                    "fingerprint": self.fingerprint,
                    "run_id": run_id,
                    "done": True,
                    "history": result.history,
                    "summary": result.summary,
                    "best_state": result.model.state_dict(),
                    "stopped_early": result.stopped_early,
                    "device": result.device,
                },
            )

    def clear(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def finished_result(spec: RunSpec, data: DeviceData, payload: dict[str, Any]) -> RunResult:
    """The result of a seed that had finished before the stage was interrupted."""
    arch = architecture_of(spec, data)
    model = build_mlp(arch).to(data.train.x.device)
    model.load_state_dict(payload["best_state"])
    return RunResult(
        arch, model, payload["history"], payload["summary"], payload["stopped_early"],
        payload["device"],
    )  # fmt: skip


def tracked_training(
    spec: RunSpec,
    data: DeviceData,
    params: Params,
    data_params: dict[str, Any],
    seed_dir: Path,
    on_epoch: Callable[[int, dict[str, float]], None],
    join: bool = False,
    checkpoints: Checkpoints | None = None,
    resume: dict[str, Any] | None = None,
    kind: str = "train",
    extra_tags: dict[str, str] | None = None,
) -> tuple[RunResult, str]:
    """Train one spec inside an MLflow run (continuing `resume`'s run if given); write its
    weights to `seed_dir`. `kind` tags the run: `train` (a run of the study as params.yaml
    defines it), `override` (a run with overrides or under `mlflow run`) or `sweep`."""
    import mlflow

    from . import tracking

    if resume is not None and resume["done"]:
        result = finished_result(spec, data, resume)
        save_weights(result, spec, seed_dir)
        return result, resume["run_id"]
    tags = {
        "kind": kind,
        "variant": spec.variant_name,
        "seed": str(spec.seed),
        "dataset": data_params["dataset"],
        **tracking.context_tags(),
        **(extra_tags or {}),  # a Ray worker may run outside the repository: the driver's win
    }
    resume_run = resume["run_id"] if resume is not None else None
    with tracking.tracked_run(
        params.mlflow.experiment, spec.run_name, tags, join, resume_run_id=resume_run
    ) as run:
        run_id = run.info.run_id
        tracking.log_params_once({**spec.hyperparameters(), **data_params})

        def log_epoch(epoch: int, row: dict[str, float]) -> None:
            # Queued, not awaited: MLflow writes it in the background and flushes the queue
            # when the run ends (FINISHED, FAILED or KILLED alike).
            mlflow.log_metrics(row, step=epoch, synchronous=False)
            on_epoch(epoch, row)

        def checkpoint(state: dict[str, Any]) -> None:
            if checkpoints is not None:
                checkpoints.save_progress(spec.seed, run_id, state)

        try:
            result = train(
                spec,
                data,
                on_epoch=log_epoch,
                resume=resume["state"] if resume is not None else None,
                on_checkpoint=checkpoint,
                checkpoint_every=checkpoints.every if checkpoints is not None else 0,
            )
        except TrainingDiverged as e:
            mlflow.set_tags({"failure": "diverged", "failure_epoch": str(e.epoch),
                             "failure_reason": e.reason})  # fmt: skip
            raise
        mlflow.log_metrics(result.summary)
        mlflow.set_tags({"device": result.device, "stopped_early": str(result.stopped_early)})
        save_weights(result, spec, seed_dir)
        mlflow.log_artifacts(str(seed_dir), artifact_path="weights")
        with tempfile.TemporaryDirectory() as tmp:
            history = Path(tmp) / "history.csv"
            write_csv(history_rows(spec, result), history)
            mlflow.log_artifact(str(history))
        if params.mlflow.log_model:
            log_model(result, data)
    if checkpoints is not None:
        checkpoints.save_done(spec.seed, run_id, result)
    return result, run_id


def log_model(result: RunResult, data: DeviceData) -> None:
    """The MLflow model, with an input example and signature, and pinned requirements."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    model = result.model.cpu().eval()
    example = data.val.x[:5].cpu().numpy()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    mlflow.pytorch.log_model(
        model,
        name="model",
        input_example=example,
        signature=infer_signature(example, output),
        pip_requirements=PIP_REQUIREMENTS,
    )


def seed_layout(params: Params, n_seeds: int, device: torch.device) -> WorkerPlan:
    """Seeds side by side on a CPU (the faster use of a few cores for small runs, see `make
    bench`); one after another on a GPU, where a run already fills the device and CUDA does not
    survive a fork.

    The thread count follows from the study's seeds in params.yaml, not from how many run now,
    so one seed trained alone (`--seed`, `mlflow run`, `--resume`) computes exactly as it does
    inside its stage."""
    if device.type != "cpu":
        return WorkerPlan(1, params.train.threads or torch.get_num_threads())
    study = plan_workers(len(params.train.seeds), params.train.parallel, params.train.threads)
    return WorkerPlan(min(study.at_once, n_seeds), study.threads)


@functools.cache
def warm_up_model_logging() -> None:
    """Pay once what a process's first `log_model` costs (importing torch.export, MLflow's scan
    of the installed packages, a first export: about 2 s), so that forked workers start warm."""
    import mlflow.pytorch
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - imported once, before the fork

    example = np.zeros((2, 2), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pytorch.save_model(
            nn.Linear(2, 2), Path(tmp) / "model", input_example=example,
            pip_requirements=PIP_REQUIREMENTS,
        )  # fmt: skip


def train_stage(
    params: Params,
    layout: Layout,
    variant: str,
    seeds: list[int] | None = None,
    join: bool = False,
    write_outputs: bool = True,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Train every seed of `variant`, log each to MLflow, then write the stage's outputs.

    `join`: log into the run `mlflow run` started (one seed) instead of a new one.
    `write_outputs`: False for runs that differ from params.yaml (overrides, `mlflow run`),
    which live in MLflow only (and are not checkpointed), so DVC's outputs keep matching
    params.yaml.
    `resume`: continue from the checkpoints an interrupted run of this stage left: finished
    seeds are not trained again, an interrupted one continues in its own MLflow run.
    """
    specs = run_specs(params, variant, seeds)  # unknown variant: fails before anything else
    prepared = load_prepared(layout.prepared)
    device = resolve_device(params.train.device)
    workers = seed_layout(params, len(specs), device)
    data = DeviceData.of(prepared, device)
    data_params = data_hyperparameters(prepared)
    checkpoints = Checkpoints(
        layout.checkpoints(variant) if write_outputs and params.train.checkpoint_every else None,
        fingerprint(
            {"data": data_params, "variant": variant, "specs": [s.hyperparameters() for s in specs]}
        ),  # fmt: skip
        params.train.checkpoint_every,
    )
    if not resume:
        checkpoints.clear()  # a fresh start never mixes with an older, interrupted one
    saved = {spec.seed: checkpoints.load(spec.seed) for spec in specs}  # bad ones fail here

    with variant_staging(layout, variant) as staging:
        models_tmp = staging / "models"
        kind = "train" if write_outputs else "override"

        def train_seed(spec: RunSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            reporter = EpochReporter(spec, live_bar=workers.at_once == 1)
            try:
                result, run_id = tracked_training(
                    spec, data, params, data_params, models_tmp / f"seed{spec.seed}", reporter,
                    join, checkpoints, saved[spec.seed], kind=kind,
                )  # fmt: skip
            finally:
                reporter.close()
            click.echo(f"{spec.run_name}: {summary_line(result.summary)}", err=True)
            return run_record(spec, result, run_id)

        if workers.at_once == 1:
            torch.set_num_threads(workers.threads)
            outcomes = [train_seed(spec) for spec in specs]
        else:
            torch.set_num_threads(1)  # no OpenMP thread pool in a process about to fork
            if params.mlflow.log_model:
                warm_up_model_logging()
            jobs = [functools.partial(train_seed, spec) for spec in specs]
            outcomes = run_jobs(jobs, workers)
        runs = [run for run, _ in outcomes]
        if not write_outputs:
            return runs
        history = [row for _, rows in outcomes for row in rows]
        write_variant_outputs(layout, variant, runs, history, models_tmp)
        checkpoints.clear()
    return runs


@contextmanager
def variant_staging(layout: Layout, variant: str) -> Iterator[Path]:
    """A temporary folder in the root (`.train-<variant>-*`, ignored by git) in which a
    variant's outputs are put together before `write_variant_outputs` swaps them in; removed
    afterwards."""
    staging = Path(tempfile.mkdtemp(prefix=f".train-{variant}-", dir=layout.root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_record(
    spec: RunSpec, result: RunResult, run_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A finished run's entry of `runs.json` and its rows of `history.csv`."""
    run = {
        "variant": spec.variant_name,
        "seed": spec.seed,
        "run_id": run_id,
        "device": result.device,
        "stopped_early": result.stopped_early,
        "hyperparameters": spec.hyperparameters(),
        "summary": result.summary,
    }
    return run, history_rows(spec, result)


def summary_line(summary: dict[str, float]) -> str:
    """A finished run in one line, as the train stage and the Ray driver print it."""
    return (
        f"best epoch {summary['best_epoch']:.0f}, val loss {summary['best_val_loss']:.4f}, "
        f"gap at last epoch {summary['loss_gap_last']:+.4f}, "
        f"test accuracy {summary['test_accuracy']:.4f}"
    )


def write_variant_outputs(
    layout: Layout,
    variant: str,
    runs: list[dict[str, Any]],
    history: list[dict[str, Any]],
    models: Path,
    missing: list[dict[str, Any]] | None = None,
) -> None:
    """Swap in a variant's `metrics/<variant>/` (from its runs) and `models/<variant>/` (the
    folder `models`, one `seed<k>/` per run), each in one step.

    `missing`: runs of the variant that did not finish (seed, run name, reason), recorded in
    `missing.json` for the report; the train stage never writes one, it fails as a whole."""
    metrics = models.parent / "metrics"
    metrics.mkdir(parents=True)
    models.mkdir(parents=True, exist_ok=True)
    if runs:
        write_csv(history, metrics / "history.csv")
        write_csv(mean_curves(history), metrics / "curves.csv")
        (metrics / "summary.json").write_text(json.dumps(seed_mean(runs), indent=2) + "\n")
    (metrics / "runs.json").write_text(json.dumps(runs, indent=2) + "\n")
    if missing:
        (metrics / "missing.json").write_text(json.dumps(missing, indent=2) + "\n")
    layout.models(variant).parent.mkdir(parents=True, exist_ok=True)
    layout.metrics(variant).parent.mkdir(parents=True, exist_ok=True)
    replace_dir(models, layout.models(variant))
    replace_dir(metrics, layout.metrics(variant))
