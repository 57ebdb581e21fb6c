"""The report stage: the gap report from every variant's outputs, `reports/`, and an MLflow
run of it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import click
import pandas as pd

from ..analysis.seed_rounds import DRIVING, rounds_for_report
from ..core.config import Params
from ..core.errors import DataError
from ..core.files import csv_text, files_into, json_text, write_atomic
from ..core.metrics import COMPARED
from ..core.paths import Layout
from ..core.spec import run_specs
from ..data.prepared import load_meta
from ..outputs import variant_files
from ..outputs.variant_files import VariantRuns
from ..reports import gap_figures, variant_means
from ..reports.gap import gap_report
from ..reports.headline import headline
from ..tracking import lifecycle, model_registry, store, ui_view, variant_runs


def report(params: Params, layout: Layout, log: bool, join: bool) -> None:
    """The gap report from every variant's outputs: `reports/`, and an MLflow run of it."""
    variants, missing = load_variants(params, layout)
    baseline = params.report.baseline
    if not any(v.name == baseline for v in variants):
        raise DataError(
            f"no run of the baseline {baseline!r} finished, so nothing can be compared: "
            + "; ".join(f"{m.run_name}: {m.reason}" for m in missing)
        )
    labels = {v.name: run_specs(params, v.name)[0].label for v in variants}
    summary, text = gap_report(
        variants,
        labels,
        load_meta(layout.prepared),
        params.report,
        missing,
        rounds_for_report(params, layout),
    )
    history = pd.DataFrame([row for v in variants for r in v.records for row in r.history_rows()])
    by_name = {v.name: v for v in variants}
    with files_into(layout.figures) as staging:
        gap_figures.draw_gap_figures(
            history,
            {v.name: v.per_seed("loss_gap_last") for v in variants},
            lambda name: (
                variant_files.read_weights(layout, name, r.seed) for r in by_name[name].records
            ),
            {
                name: entry["vs_baseline"]
                for name, entry in summary["variants"].items()
                if "vs_baseline" in entry
            },
            staging,
        )
    write_atomic(layout.gap_report, text)
    write_atomic(layout.summary, json_text(summary))
    write_atomic(layout.per_seed, per_seed_csv(variants))
    write_atomic(layout.headline, json_text(headline(summary)))
    if log:
        publish(params, layout, summary, variants, join)
    click.echo(f"report: {layout.gap_report.relative_to(layout.root)}")


def per_seed_csv(variants: list) -> str:
    """The per-seed values of every run the report read, on every measure a verdict or a
    round's choice rests on: each verdict can be recomputed from this file alone."""
    keys = dict.fromkeys([*COMPARED, *DRIVING])
    rows = [
        {"variant": v.name, "seed": r.seed, **{k: r.summary[k] for k in keys}}
        for v in variants
        for r in v.records
    ]
    return csv_text(rows)


def load_variants(params: Params, layout: Layout) -> tuple[list, list]:
    """Every variant's finished runs (those with any), and the runs that did not finish (in
    its train stage, or in the rounds)."""
    done = rounds_for_report(params, layout)
    loaded = []
    for name in params.variants:
        runs = variant_files.read_variant(layout, params, name, done.added(name))
        lost = [m for m in done.missing if m.variant == name]  # a diverged one withholds too
        loaded.append(VariantRuns(name, runs.records, runs.missing + lost))
    return [v for v in loaded if v.records], [m for v in loaded for m in v.missing]


def publish(params: Params, layout: Layout, summary: dict, variants: list, join: bool) -> None:
    """The report in MLflow: its run, the recommended network in the registry, the UI's view."""
    report_run = log_report(params, layout, summary, join)
    log_variant_parents(params, layout, summary, variants, report_run)
    if params.mlflow.log_model:
        register_recommended(params, layout, summary, variants, report_run)


def publish_if_missing(params: Params, layout: Layout) -> None:
    """The report in MLflow where the store lacks it: `dvc repro` skips the report stage when
    its outputs are already there (committed, as on a fresh clone), and with it the report's
    MLflow run, the registered network and the view. Once per summary (its digest)."""
    import mlflow

    if not layout.summary.is_file():
        return
    summary = json.loads(layout.summary.read_text())
    experiment = store.ensure_experiment(params.mlflow.experiment)
    found = mlflow.MlflowClient().search_runs(
        [experiment],
        f"tags.kind = 'report' and tags.summary_digest = '{summary_digest(summary)}'",
        max_results=1,
    )
    if found:
        return
    variants, _ = load_variants(params, layout)
    if {v.name for v in variants} == set(summary["variants"]):  # its runs' outputs are here
        click.echo("report: logged to MLflow (dvc repro found it up to date)")
        publish(params, layout, summary, variants, join=False)


def log_variant_parents(
    params: Params, layout: Layout, summary: dict, variants: list, report_run: str
) -> None:
    """Each variant as an MLflow run, the parent of its seeds' runs, beside the report's, in
    its seeds' colour. A convenience, as the view is: the report stands without them."""
    from mlflow.exceptions import MlflowException

    try:
        _log_variant_parents(params, layout, summary, variants, report_run)
    except MlflowException as error:
        click.echo(f"note: the variants' MLflow runs were not written: {error.message}", err=True)


def _log_variant_parents(
    params: Params, layout: Layout, summary: dict, variants: list, report_run: str
) -> None:
    import mlflow

    report = mlflow.MlflowClient().get_run(report_run)
    tags = {"dataset": summary["conditions"]["dataset"], **store.context_tags()}
    colours = ui_view.colours(params.variants)
    runs = variant_means.variant_runs(
        variants, lambda name, seed: variant_files.run_id_of(layout, name, seed)
    )
    variant_runs.log_variant_runs(
        report.info.experiment_id,
        summary_digest(summary),
        report.data.tags.get(variant_runs.PARENT_TAG),
        [replace(r, tags={**tags, ui_view.COLOR_TAG: colours[r.name]}) for r in runs],
    )


def summary_digest(summary: dict) -> str:
    """What tells one report's summary from another's: 16 hex digits of its file's SHA-256."""
    return hashlib.sha256(json_text(summary).encode()).hexdigest()[:16]


def register_recommended(
    params: Params, layout: Layout, summary: dict, variants: list, report_run: str
) -> None:
    """The recommended variant's kept network in the Model Registry (`model_registry`)."""
    name = params.mlflow.experiment
    chosen = model_registry.recommend(summary, {v.name: v.records for v in variants})
    run_id = chosen and variant_files.run_id_of(layout, chosen.variant, chosen.record.seed)
    version = model_registry.register(name, chosen, run_id, report_run)
    if chosen is None:
        click.echo(
            f"no variant is decided better on best val loss: no model @{model_registry.ALIAS}"
        )
    elif version is None:
        click.echo(f"{chosen.variant}: its runs were not made here (no logs/); not registered")
    else:
        where = f"models:/{name}@{model_registry.ALIAS}"
        click.echo(f"{where}: {chosen.variant}, seed {chosen.record.seed} (version {version})")


def log_report(params: Params, layout: Layout, summary: dict, join: bool) -> str:
    """Log the report as an MLflow run of its own; return its run id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    tags = {
        "kind": "report",
        "summary_digest": summary_digest(summary),
        "dataset": summary["conditions"]["dataset"],
        **store.context_tags(),
    }
    with lifecycle.tracked_run(params.mlflow.experiment, "report", tags, join) as run:
        metrics, stops = {}, {}
        for name, entry in summary["variants"].items():
            metrics[f"loss_gap_last.{name}"] = entry["loss_gap_last"]["mean"]
            metrics[f"test_accuracy.{name}"] = entry["test_accuracy"]["mean"]
            metrics[f"n_seeds.{name}"] = entry["n_seeds"]
            stops[f"stopped.{name}"] = entry["stopped"]
            for key, change in entry.get("vs_baseline", {}).items():
                stops[f"verdict.{key}.{name}"] = change["verdict"]
        mlflow.log_metrics(metrics)
        mlflow.set_tags(stops)
        for path in (layout.gap_report, layout.summary, layout.per_seed):
            mlflow.log_artifact(str(path))
        mlflow.log_artifacts(str(layout.figures), artifact_path="figures")
        try:
            # params.yaml's order, not the summary's, which lacks a variant with no finished run:
            # a variant's colour is its place there
            ui_view.install(mlflow.MlflowClient(), run.info.experiment_id, params.variants)
        except MlflowException as error:  # a view is a convenience: the report stands without
            click.echo(f"note: the MLflow view was not written: {error.message}", err=True)
        return run.info.run_id
