"""`python -m pipeline`: the study's stages as commands, named like the DVC stages."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .config import Params, load_params
from .errors import ConfigError, DataError, TrainingDiverged
from .paths import Layout, project_root

BAD_INPUT = 2  # exit code for anything the user can fix in params.yaml, flags or data files


def fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's own errors into one line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ConfigError, DataError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(BAD_INPUT)
        except TrainingDiverged as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)

    return wrapper


def _load(params_path: str) -> tuple[Params, Layout]:
    path = Path(params_path)
    return load_params(path), Layout(project_root())


params_option = click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The study's configuration.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A reproducible study of overfitting and regularization.

    \b
    Stages (the same as in dvc.yaml):
      prepare   split and normalise the dataset once      -> data/prepared/
      train     train one variant for every seed           -> models/, metrics/, MLflow
      report    compare the variants' generalization gaps  -> reports/, MLflow
      study     all three in one process, without DVC
    """


@main.command()
@params_option
@fail_cleanly
def prepare(params_path: str) -> None:
    """Split the dataset (stratified), add label noise, normalise; write data/prepared/."""
    from .prepare import prepare as make_splits
    from .prepare import write_prepared

    params, layout = _load(params_path)
    prepared, norm = make_splits(params.data)
    write_prepared(prepared, norm, layout.prepared)
    sizes = prepared.meta["sizes"]
    click.echo(
        f"prepared {params.data.dataset}: train {sizes['train']}, val {sizes['val']}, "
        f"test {sizes['test']} -> {layout.prepared.relative_to(layout.root)}/"
    )


@main.command()
@click.option("--variant", required=True, help="A key of `variants` in params.yaml.")
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    help="Train only this seed (repeatable); default: every seed in train.seeds.",
)
@params_option
@fail_cleanly
def train(variant: str, seeds: tuple[int, ...], params_path: str) -> None:
    """Train VARIANT for every seed; one MLflow run per seed."""
    from .train import train_stage

    params, layout = _load(params_path)
    params.variant(variant)  # an unknown name fails here, before any data is read
    train_stage(params, layout, variant, list(seeds) or None)


@main.command()
@click.option("--no-mlflow", is_flag=True, help="Write the report files only.")
@params_option
@fail_cleanly
def report(no_mlflow: bool, params_path: str) -> None:
    """Write reports/gap_report.md, reports/summary.json and reports/figures/."""
    params, layout = _load(params_path)
    _report(params, layout, log=not no_mlflow)


def _report(params: Params, layout: Layout, log: bool) -> None:
    from .report import log_report, report_stage

    summary = report_stage(params, layout)
    if log:
        log_report(params, layout, summary)
    click.echo(f"report: {(layout.reports / 'gap_report.md').relative_to(layout.root)}")


@main.command()
@params_option
@click.pass_context
@fail_cleanly
def study(ctx: click.Context, params_path: str) -> None:
    """prepare, train every variant, report: the whole study without DVC."""
    from .train import train_stage

    params, layout = _load(params_path)
    ctx.invoke(prepare, params_path=params_path)
    for name in params.variants:
        train_stage(params, layout, name)
    _report(params, layout, log=True)
    print_next_steps(layout)


def print_next_steps(layout: Layout) -> None:
    from .tracking import tracking_uri

    click.echo(
        f"\nReport: {layout.reports / 'gap_report.md'}\n"
        f"MLflow UI: mlflow ui --backend-store-uri {tracking_uri()} --host 127.0.0.1 "
        f"(then open http://127.0.0.1:5000)"
    )


@main.command("next-steps", hidden=True)
def next_steps() -> None:
    """Where the report is and how to open the MLflow UI (printed after `make study`)."""
    print_next_steps(Layout(project_root()))
