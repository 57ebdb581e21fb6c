"""The train stage of one variant: every seed, one MLflow run each; then its `models/` and
`metrics/`."""

from __future__ import annotations

import hashlib

import click

from ..core.config import ModelConfig, Params
from ..core.paths import Layout
from ..core.records import RunRecord
from ..core.spec import run_specs, study_specs
from ..data.prepared import load_pool
from ..executors.checkpoint import Checkpoints, fingerprint
from ..executors.local import end_runs_of_dead_processes, fail_if_diverged, on_device, run_here
from ..executors.tracked_stack import RunContext
from ..outputs import variant_files
from ..tracking import store
from ..training import user_network
from ..training.applicable import check_applicable


def train(
    params: Params,
    layout: Layout,
    variant: str,
    overridden: set[str] | None = None,
    resume: bool = False,
) -> list[RunRecord]:
    """The train stage: every seed of `variant`, one MLflow run each; then `models/` and
    `metrics/` of it.

    A run whose `params` differ from params.yaml (`overridden`: the knobs changed on the
    command line) or that runs under `mlflow run` (which fills the one run MLflow started with
    one seed) lives in MLflow only, so DVC's outputs keep matching params.yaml. `resume`
    continues from the checkpoints an interrupted run of this stage left: finished seeds are
    not trained again, an interrupted one continues in its own MLflow run.
    """
    launched = store.launcher_run_id() is not None
    # How many seeds train at once changes no result; any other override does.
    tracked_only = launched or bool((overridden or set()) - {"parallel"})
    if tracked_only:
        click.echo(
            "note: a run with overrides or under `mlflow run` is logged to MLflow only; "
            "DVC's models/ and metrics/ are left untouched",
            err=True,
        )
    seeds = params.train.seeds[:1] if launched else None
    return train_variant(params, layout, variant, seeds, tracked_only, launched, resume)


def network_source_digest(model: ModelConfig) -> str | None:
    """The SHA-256 of the module that defines the user's network; None for a built-in one
    (the package's code is the stage's own dependency)."""
    if model.built_in:
        return None
    return hashlib.sha256(user_network.source_file(model.network).read_bytes()).hexdigest()


def train_variant(
    params: Params,
    layout: Layout,
    variant: str,
    seeds: list[int] | None = None,
    tracked_only: bool = False,
    join: bool = False,
    resume: bool = False,
) -> list[RunRecord]:
    """`seeds` of `variant` (all of params.yaml's by default), run here; unless `tracked_only`,
    its outputs then. `join`: fill the run `mlflow run` started."""
    if not tracked_only:  # a stage of the study: its rounds must be plannable before it trains
        params.check_rounds()
    specs = run_specs(params, variant, seeds)
    pool = load_pool(layout.prepared)
    # Under DVC, the first train stage refuses a study any of whose variants cannot train.
    check_applicable(specs if tracked_only else study_specs(params), pool)
    data = on_device(params.train.device, pool)  # refuses data too large for it, in one line
    end_runs_of_dead_processes(params.mlflow.experiment, variant)
    checkpoints = None
    if not tracked_only and params.train.checkpoint_every:
        made_with = {  # a checkpoint continues only on the same data, on the same device
            "format": 3,  # the training state's layout (3: per-seed augmentation generators)
            "data": pool.logged(),
            "data_digest": pool.digest(),
            "device": str(data.device),
            "variant": variant,
            "specs": [s.hyperparameters() for s in specs],
            # a network of the user's is named, not described, by the specs: its code too
            "network": network_source_digest(params.model),
        }
        checkpoints = Checkpoints(
            layout.checkpoints(variant),
            fingerprint(made_with),
            params.train.checkpoint_every,
            [s.seed for s in specs],
            resume,
        )
    kind = "override" if tracked_only else "train"
    context = RunContext.of(params.mlflow, pool, kind=kind, join=join)
    live = None if tracked_only else variant_files.LiveHistory(layout, variant)
    try:
        records, diverged = run_here(specs, data, context, params.train, checkpoints, None, live)
        fail_if_diverged(diverged, "" if tracked_only else "models/ or metrics/")
    except BaseException:
        if live is not None:
            live.discard()
        raise
    if not tracked_only:
        variant_files.write_variant(layout, variant, records)
        if checkpoints is not None:
            checkpoints.clear()
    return records
