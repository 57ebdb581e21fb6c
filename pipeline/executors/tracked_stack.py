"""Runs: the seeds of one variant, trained as one stack, each in its own MLflow run, give one
`RunRecord` each.

This is the only caller of the trainer. Around `trainer.train_stack` it opens (or joins, or
resumes) the MLflow runs, logs the params, each epoch's metrics, the summary, the weights and
the model of each (`mlflow_model`), keeps the checkpoints of `train --resume`, and hands back
typed records of the finished runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from ..core import signals
from ..core.config import MlflowConfig
from ..core.errors import TrainingDiverged
from ..core.files import csv_text, json_text
from ..core.records import EPOCH_SECONDS, RUN_SECONDS, MissingRun, RunRecord
from ..core.spec import RunSpec
from ..data.prepared import Normalization, Pool, Prepared
from ..tracking import lifecycle, orphans, store
from ..tracking.epoch_log import EpochMetrics
from ..training.device import TrainingData, processor
from ..training.trainer import TrainResult, train_stack
from .checkpoint import Checkpoints
from .mlflow_model import log_model


@dataclass(frozen=True)
class RunContext:
    """What the runs of one command share besides the data: where they are tracked, what kind
    of run they are (`train`: the study as params.yaml defines it; `override`: with overrides
    or under `mlflow run`; `sweep`: a strength-path point), and their extra tags."""

    experiment: str
    log_model: bool
    data_params: Mapping[str, Any]  # `Pool.logged()`
    kind: str = "train"
    tags: Mapping[str, str] = field(default_factory=dict)
    join: bool = False  # fill the run `mlflow run` started instead of a new one
    dataset: Mapping[str, str] | None = None  # `Pool.described()`: each run's MLflow input

    @classmethod
    def of(cls, settings: MlflowConfig, prepared: Pool | Prepared, **how: Any) -> RunContext:
        """The context of runs under params.yaml's `mlflow` section, on the data `prepared`."""
        return cls(
            settings.experiment,
            settings.log_model,
            prepared.logged(),
            dataset=prepared.described(),
            **how,
        )


def execute_stack(
    specs: list[RunSpec],
    data: TrainingData,
    context: RunContext,
    on_epoch: Callable[[int, int, dict[str, float]], None],
    checkpoints: Checkpoints | None = None,
    on_finished: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord | MissingRun]:
    """Train the seeds `specs` of one variant as one stack, each in its own MLflow run
    (continuing its checkpoint's run, if any), and record them, in the order of `specs`.
    A seed whose loss diverged is a `MissingRun` (`diverged`), its run FAILED with the reason
    in its tags; the others end FINISHED. `on_epoch(i, epoch, row)` hears each epoch of
    specs[i]; `on_finished(record)` stores a finished seed while its run is still open, so
    that an interrupt can never leave a FINISHED run whose seed was not stored."""
    import mlflow

    records: list[RunRecord | MissingRun | None] = [None] * len(specs)
    todo, saved = [], []
    for i, spec in enumerate(specs):
        seed_saved = checkpoints.saved.get(spec.seed) if checkpoints is not None else None
        if seed_saved is not None and seed_saved["done"]:  # finished before an interrupt
            # Killed between recording the seed done and ending its run: end it now.
            orphans.end_if_running(seed_saved["run_id"], "FINISHED")
            records[i] = RunRecord.from_checkpoint(seed_saved["finished"])
        else:
            todo.append(spec)
            saved.append(seed_saved)
    if not todo:
        return records  # type: ignore[return-value]
    openings = [
        (spec.run_name, run_tags(spec, context), s and s["run_id"])
        for spec, s in zip(todo, saved, strict=True)
    ]
    with lifecycle.tracked_runs(context.experiment, openings, context.join) as runs:
        client = mlflow.MlflowClient()
        metrics = []
        for spec, run_id, seed_saved in zip(todo, runs.ids, saved, strict=True):
            resumed = seed_saved is not None
            if resumed and client.get_run(run_id).data.tags.get("failure") == "process died":
                client.delete_tag(run_id, "failure")  # ended as its process died: it goes on now
            store.log_params_once(run_id, {**spec.hyperparameters(), **context.data_params})
            if context.dataset is not None and not resumed:
                store.log_dataset(run_id, context.dataset)
            # A resumed run retrains the epochs after its checkpoint; those it had logged
            # before the interrupt are in the store already and are not logged twice.
            metrics.append(EpochMetrics(run_id, resumed=resumed))

        def log_epoch(i: int, epoch: int, row: dict[str, float]) -> None:
            metrics[i].log(epoch, row)
            on_epoch(specs.index(todo[i]), epoch, row)

        def checkpoint(i: int, state: dict[str, Any]) -> None:
            assert checkpoints is not None
            metrics[i].confirm()  # a checkpoint never gets ahead of the metrics in the store
            checkpoints.save_progress(todo[i].seed, runs.ids[i], state)

        results = train_stack(
            todo,
            data,
            on_epoch=log_epoch,
            resume=[s["state"] if s is not None else None for s in saved],
            on_checkpoint=checkpoint if checkpoints is not None else None,
            checkpoint_every=checkpoints.every if checkpoints is not None else 0,
            should_stop=signals.stop_requested,
        )
        for spec, result, run_id, seed_metrics in zip(
            todo, results, runs.ids, metrics, strict=True
        ):
            if isinstance(result, TrainingDiverged):
                runs.blame(run_id)
                seed_metrics.confirm()  # the epochs before it diverged, for a look in the UI
                for key, value in {
                    "failure": "diverged",
                    "failure_epoch": str(result.epoch),
                    "failure_reason": result.reason,
                }.items():
                    client.set_tag(run_id, key, value)
                runs.end(run_id, "FAILED")
                records[specs.index(spec)] = MissingRun(
                    spec.variant_name, spec.seed, spec.run_name, str(result), diverged=True
                )
                continue
            with runs.finishing(run_id):
                seed_metrics.confirm()  # every epoch in the store, or the run is not FINISHED
                record = finish_run(spec, result, run_id, data, context)
                if checkpoints is not None:
                    # Recorded done while the run is open and the signals are held: a signal
                    # that came during the model's logging can no longer leave a FINISHED run
                    # that a resume would open again.
                    checkpoints.save_done(spec.seed, run_id, record.to_checkpoint())
                if on_finished is not None:
                    on_finished(record)
            records[specs.index(spec)] = record
    return records  # type: ignore[return-value]


def run_tags(spec: RunSpec, context: RunContext) -> dict[str, str]:
    return {
        "kind": context.kind,
        "variant": spec.variant_name,
        "seed": str(spec.seed),
        "dataset": context.data_params["dataset"],
        **store.context_tags(),
        **context.tags,  # a Ray worker may run outside the repository: the driver's win
        **orphans.process_tags(),
    }


def finish_run(
    spec: RunSpec, result: TrainResult, run_id: str, data: TrainingData, context: RunContext
) -> RunRecord:
    """Log a trained seed's model, summary, weights and history to its (active) run. The
    summary's metrics name the model and the data they were measured on, so that MLflow's
    page of the logged model shows them."""
    import mlflow
    from mlflow.entities import Dataset

    seed_data = data.for_seed(spec.seed)
    record = record_of(spec, result, run_id, seed_data.normalization)
    model_id = None
    if context.log_model:
        model_id = log_model(record, result.model, seed_data, spec.model)
    dataset = Dataset(**context.dataset) if context.dataset is not None else None
    mlflow.log_metrics(result.summary, model_id=model_id, dataset=dataset)
    mlflow.set_tags(
        {
            "device": result.device,
            "processor": record.processor,
            "stopped_early": str(result.stopped_early),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights, history = Path(tmp) / "weights", Path(tmp) / "history.csv"
        weights.mkdir()
        for name, content in record.model_files.items():
            (weights / name).write_bytes(content)
        mlflow.log_artifacts(str(weights), artifact_path="weights")
        history.write_text(csv_text(record.history_rows(timings=True)))
        mlflow.log_artifact(str(history))
    return record


def record_of(
    spec: RunSpec, result: TrainResult, run_id: str, normalization: Normalization
) -> RunRecord:
    """The record of a finished training: its results apart from its timings, and its weights
    as the files `models/<variant>/seed<k>/` holds: a state dict in safetensors, loadable
    without unpickling, the architecture as JSON, and the normalisation its inputs need
    (`mean`, `std` in safetensors: x ↦ (x − mean) / std)."""
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    statistics = {
        "mean": torch.from_numpy(normalization.mean),
        "std": torch.from_numpy(normalization.std),
    }
    hyperparameters = spec.hyperparameters()
    architecture = {
        "architecture": result.architecture.to_json(),
        "hyperparameters": hyperparameters,
    }
    return RunRecord(
        variant=spec.variant_name,
        seed=spec.seed,
        hyperparameters=hyperparameters,
        device=result.device,
        stopped_early=result.stopped_early,
        summary={k: v for k, v in result.summary.items() if k != RUN_SECONDS},
        history=[{k: v for k, v in row.items() if k != EPOCH_SECONDS} for row in result.history],
        processor=processor(result.device),
        run_id=run_id,
        epoch_seconds=[row[EPOCH_SECONDS] for row in result.history],
        model_files={
            "model.safetensors": safetensors_bytes(state),
            "architecture.json": json_text(architecture).encode(),
            "normalization.safetensors": safetensors_bytes(statistics),
        },
    )
