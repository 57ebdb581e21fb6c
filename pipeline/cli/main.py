"""`python -m pipeline`: the stages as commands, named like the DVC stages."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..core.loading import MODEL_KNOBS, OVERRIDABLE, VARIANT_KNOBS, with_overrides
from ..core.paths import Layout, project_root
from ..core.techniques import listing
from ..tracking import store, ui_view
from .common import (
    OneLineErrors,
    fail_cleanly,
    key_values,
    load,
    params_option,
    parse_strength,
    stage,
)
from .study import study
from .sweep_stages import sweep_dvc_yaml
from .tuned_study import tuned


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A reproducible study of overfitting and regularization.

    \b
    Stages (the same as in dvc.yaml):
      prepare   the dataset as one pool, and how seeds split it -> data/prepared/
      train     train one variant for every seed           -> models/, metrics/, MLflow
      rounds    more seeds where a verdict is still undecided -> rounds/, MLflow
      report    compare the variants' generalization gaps  -> reports/, MLflow
      study     every stage in one process, without DVC
      tuned     the strength paths and the tuned study in one process (sweep-stages/)
    """


@main.command()
@params_option
@fail_cleanly
def prepare(params_path: str) -> None:
    """The dataset as one pool, and how each seed draws its split of it: data/prepared/."""
    params, layout = load(params_path)
    stage("prepare").prepare(params, layout)


def override_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--KNOB VALUE` for every overridable knob, spelled with '-' or '_' (as `mlflow run`
    passes undeclared parameters), collected into `overrides`. Values are read as YAML and
    validated like params.yaml, so a bad one fails with one line naming the key."""
    for knob in reversed(OVERRIDABLE):
        flags = {f"--{knob.replace('_', '-')}", f"--{knob}"}
        help_text = (
            "Train this one seed." if knob == "seed" else f"Override {_section(knob)}.{knob}."
        )
        command = click.option(*sorted(flags), knob, default=None, metavar="VALUE", help=help_text)(
            command
        )
    return command


def _section(knob: str) -> str:
    if knob in VARIANT_KNOBS:
        return "variants.VARIANT"
    return "model" if knob in MODEL_KNOBS else "train"


@main.command()
@click.option("--variant", required=True, help="A key of `variants` in params.yaml.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the checkpoints an interrupted run of this stage left "
    "(train.checkpoint_every); seeds that had finished are not trained again.",
)
@params_option
@override_options
@fail_cleanly
def train(variant: str, resume: bool, params_path: str, **knobs: str | None) -> None:
    """Train VARIANT for every seed; one MLflow run per seed.

    Overrides apply on top of params.yaml (which is not edited), e.g.
    `train --variant dropout --dropout 0.3 --lr 3e-4 --seed 1`. Under `mlflow run`, the
    command joins the run MLflow started and trains one seed (--seed, else the first).
    """
    params, layout = load(params_path)
    overrides = {k: v for k, v in knobs.items() if v is not None}
    if overrides:
        params = with_overrides(params, variant, overrides)
    params.variant(variant)  # an unknown name fails here, before anything heavy is loaded
    stage("train").train(params, layout, variant, set(overrides), resume)


@main.command()
@params_option
@fail_cleanly
def rounds(params_path: str) -> None:
    """More seeds, in rounds, for the variants still undecided (params.yaml's `rounds`) and
    the baseline they pair with: rounds/. With `rounds: null` it trains nothing."""
    params, layout = load(params_path)
    stage("rounds").rounds(params, layout)


@main.command()
@click.option("--no-mlflow", is_flag=True, help="Write the report files only.")
@params_option
@fail_cleanly
def report(no_mlflow: bool, params_path: str) -> None:
    """Write reports/gap_report.md, reports/summary.json and reports/figures/."""
    params, layout = load(params_path)
    stage("report").report(params, layout, log=not no_mlflow, join=True)


@main.command("sweep-run")
@click.argument("technique")
@click.argument("strength")
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    help="A seed to train (repeatable; default: every seed of train.seeds).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="The folder to write the point to (default: sweeps/TECHNIQUE/STRENGTH/).",
)
@params_option
@fail_cleanly
def sweep_run(
    technique: str, strength: str, seeds: tuple[int, ...], out: str | None, params_path: str
) -> None:
    """Train one point of a strength path: TECHNIQUE at STRENGTH (on top of the baseline
    variant), its seeds together, one MLflow run each. `dvc repro sweep-stages/dvc.yaml` runs
    every point."""
    params, layout = load(params_path)
    value = parse_strength(params, technique, strength)
    params.sweep.variant(technique, value)  # a bad technique or strength fails before imports
    stage("sweep_point").sweep_run(params, layout, technique, value, list(seeds) or None, out)


@main.command("sweep-report")
@params_option
@fail_cleanly
def sweep_report(params_path: str) -> None:
    """Write reports/sweep/: each technique's val loss, train loss, gap and test accuracy
    against its strength, and the best strength by val loss with its interval."""
    params, layout = load(params_path)
    stage("sweep_report").sweep_report(params, layout)


@main.command("choose")
@params_option
@fail_cleanly
def choose(params_path: str) -> None:
    """Write reports/tuned/chosen.csv: per technique of the strength paths and seed, the
    strength of lowest val loss (the test split unread), with seeds added in rounds while a
    technique is undecided (tuned-rounds/)."""
    params, layout = load(params_path)
    stage("tuned").choose(params, layout)


@main.command("tuned-report")
@params_option
@fail_cleanly
def tuned_report(params_path: str) -> None:
    """Write reports/tuned/: each technique at the strengths chosen.csv holds, against the
    baseline on the test split, with corrected verdicts."""
    params, layout = load(params_path)
    stage("tuned").tuned_report(params, layout)


@main.command("compare")
@click.option("--by", required=True, help="The logged parameter to group by, e.g. label_noise.")
@click.option(
    "--where",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keep only runs whose parameter KEY is VALUE (repeatable), e.g. dataset=mnist-5k.",
)
@click.option("--experiment", default=None, help="MLflow experiment (default: params.yaml's).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder (default: reports/compare/BY).",
)
@params_option
@fail_cleanly
def compare_command(
    by: str, where: tuple[str, ...], experiment: str | None, out: str | None, params_path: str
) -> None:
    """One report across studies from the MLflow store: each variant's gap and test accuracy
    against the baseline, per value of a logged parameter (label noise, training-set size)."""
    params, layout = load(params_path)
    conditions = key_values("--where", where)
    stage("compare").compare(params, layout, by, conditions, experiment, out)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; anything but loopback exposes the store to the network.",
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@params_option
@fail_cleanly
def ui(host: str, port: int, params_path: str) -> None:
    """Start the MLflow UI against the project's tracking store, and print the address of the
    study's view: its training runs grouped by variant."""
    params, _ = load(params_path)
    address = ui_view.view_address(f"http://{host}:{port}", params.mlflow.experiment)
    click.echo(f"MLflow UI on {address}\n(store: {store.tracking_uri()}); Ctrl-C stops it")
    sys.exit(store.serve_ui(host, port))


@main.command()
def techniques() -> None:
    """List every regularization technique a variant can switch on: its knob, its values,
    where it acts in training, and whether it has a strength path (`sweep.KNOB`)."""
    click.echo("\n".join(listing()))


@main.command("sweep-stages", hidden=True)
@params_option
@fail_cleanly
def sweep_stages(params_path: str) -> None:
    """Print sweep-stages/dvc.yaml as the registry of techniques defines it, with the joint
    grid over the techniques of params.yaml's `sweep.combined`."""
    params, _ = load(params_path)
    click.echo(sweep_dvc_yaml(list(params.sweep.combined)), nl=False)


main.add_command(study)
main.add_command(tuned)


@main.command("next-steps", hidden=True)
@params_option
@fail_cleanly
def next_steps(params_path: str) -> None:
    """After `make study`'s `dvc repro`: the report in MLflow where the repro skipped its stage,
    then where the report is and the address of the study's view in the MLflow UI."""
    params, layout = load(params_path)
    stage("report").publish_if_missing(params, layout)
    click.echo(ui_view.next_steps(layout.gap_report, params.mlflow.experiment))


@main.command("machine-note", hidden=True)
def machine_note() -> None:
    """Before `make study`'s `dvc repro`: a note where the committed results were made on
    another processor than this machine's CPU. Results made on a GPU get none (telling this
    machine's GPU would take torch). A note, never an error: it exits 0."""
    from ..training.device import processor

    made_on = committed_processors(Layout(project_root()).summary)
    here = processor("cpu")
    if made_on and set(made_on) != {here}:
        click.echo(
            f"note: the committed results were made on {' and '.join(made_on)}; this machine "
            f"is {here}. DVC retrains what its cache lacks, the numbers will differ in the last "
            "digits (other matrix kernels round differently), and `git status` will show the "
            "changed outputs."
        )


def committed_processors(summary: Path) -> list[str]:
    """The CPUs reports/summary.json says its runs were made on; none where it is missing,
    unreadable, older than the processor's record, or made on a GPU."""
    try:
        conditions = json.loads(summary.read_text())["conditions"]
        devices = [str(d) for d in conditions.get("device", [])]
        processors = [str(p) for p in conditions.get("processor", []) if p]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return [] if any(d != "cpu" for d in devices) else processors
