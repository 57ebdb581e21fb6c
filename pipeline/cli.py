"""`python -m pipeline`: the study's stages as commands, named like the DVC stages."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .config import OVERRIDABLE, VARIANT_KNOBS, Params, load_params, with_overrides
from .errors import ConfigError, DataError, StudyIncomplete, TrainingDiverged
from .executors import EXECUTORS
from .paths import Layout, project_root

BAD_INPUT = 2  # exit code for anything the user can fix in params.yaml, flags or data files


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: runs end KILLED and no output is left half-written."""


_terminated = False  # set by SIGTERM: Ray's waits re-raise any interrupt as KeyboardInterrupt


def _raise_terminated(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's own errors into one line on stderr and a non-zero exit; turn SIGINT
    and SIGTERM into an orderly stop (exit 130 / 143)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return command(*args, **kwargs)
        except (ConfigError, DataError) as e:
            fail(str(e), BAD_INPUT)
        except (TrainingDiverged, StudyIncomplete) as e:
            fail(str(e), 1)
        except KeyboardInterrupt as e:
            by_sigterm = isinstance(e, Terminated) or _terminated
            name, code = ("SIGTERM", 143) if by_sigterm else ("SIGINT", 130)
            click.echo(
                f"interrupted ({name}): open MLflow runs are marked KILLED; no stage output "
                "was written (the stage reruns in full, or use `train --resume`)",
                err=True,
            )
            sys.exit(code)

    return wrapper


def fail(message: str, code: int) -> None:
    from .tracking import mark_launcher_failed

    click.echo(f"error: {message}", err=True)
    mark_launcher_failed(message)
    sys.exit(code)


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


def override_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--KNOB VALUE` for every overridable knob, spelled with '-' or '_' (as `mlflow run`
    passes undeclared parameters), collected into `overrides`. Values are read as YAML and
    validated like params.yaml, so a bad one fails with one line naming the key."""
    for knob in reversed(OVERRIDABLE):
        flags = {f"--{knob.replace('_', '-')}", f"--{knob}"}
        help_text = (
            "Train this one seed." if knob == "seed"
            else f"Override {'variants.VARIANT' if knob in VARIANT_KNOBS else 'train'}.{knob}."
        )  # fmt: skip
        command = click.option(*sorted(flags), knob, default=None, metavar="VALUE",
                               help=help_text)(command)  # fmt: skip
    return command


@main.command()
@click.option("--variant", required=True, help="A key of `variants` in params.yaml.")
@click.option(
    "--resume", is_flag=True,
    help="Continue from the checkpoints an interrupted run of this stage left "
    "(train.checkpoint_every); seeds that had finished are not trained again.",
)  # fmt: skip
@params_option
@override_options
@fail_cleanly
def train(variant: str, resume: bool, params_path: str, **knobs: str | None) -> None:
    """Train VARIANT for every seed; one MLflow run per seed.

    Overrides apply on top of params.yaml (which is not edited), e.g.
    `train --variant dropout --dropout 0.3 --lr 3e-4 --seed 1`. Under `mlflow run`, the
    command joins the run MLflow started and trains one seed (--seed, else the first).
    """
    params, layout = _load(params_path)
    overrides = {k: v for k, v in knobs.items() if v is not None}
    if overrides:
        params = with_overrides(params, variant, overrides)
    params.variant(variant)  # an unknown name fails here, before any data is read

    from .tracking import launcher_run_id  # imported once the input is known to be good
    from .train import train_stage

    launched = launcher_run_id() is not None
    # One run was started for us by `mlflow run`: one seed fills it.
    seeds = params.train.seeds[:1] if launched else None
    # How the seeds share the cores changes no result; any other override does.
    tracked_only = launched or bool(set(overrides) - {"parallel", "threads"})
    if tracked_only:
        click.echo(
            "note: a run with overrides or under `mlflow run` is logged to MLflow only; "
            "DVC's models/ and metrics/ are left untouched",
            err=True,
        )
    train_stage(
        params, layout, variant, seeds, join=launched, write_outputs=not tracked_only,
        resume=resume,
    )  # fmt: skip


@main.command()
@click.option("--no-mlflow", is_flag=True, help="Write the report files only.")
@params_option
@fail_cleanly
def report(no_mlflow: bool, params_path: str) -> None:
    """Write reports/gap_report.md, reports/summary.json and reports/figures/."""
    params, layout = _load(params_path)
    _report(params, layout, log=not no_mlflow, join=True)


def _report(params: Params, layout: Layout, log: bool, join: bool) -> None:
    from .report import log_report, report_stage

    summary = report_stage(params, layout)
    if log:
        log_report(params, layout, summary, join)
    click.echo(f"report: {(layout.reports / 'gap_report.md').relative_to(layout.root)}")


@main.command("sweep-run")
@click.argument("technique")
@click.argument("strength")
@click.option("--seed", type=int, required=True, help="The run's seed.")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None,
    help="Where to write the point (default: sweeps/TECHNIQUE/STRENGTH-seedSEED.json).",
)  # fmt: skip
@params_option
@fail_cleanly
def sweep_run(technique: str, strength: str, seed: int, out: str | None, params_path: str) -> None:
    """Train one point of a strength path: TECHNIQUE at STRENGTH (on top of the baseline
    variant) for one seed, as one MLflow run. `dvc repro sweep-report` runs every point."""
    params, layout = _load(params_path)
    try:
        value = float(strength)
    except ValueError:
        raise ConfigError(f"sweep strength {strength!r} is not a number") from None
    params.sweep.variant(technique, value)  # a bad technique or strength fails here

    from .sweep import run_point

    target = Path(out) if out else layout.sweep_point(technique, value, seed)
    run_point(params, layout, technique, value, seed, target)
    click.echo(f"{technique}={value:g} seed {seed}: {target}", err=True)


@main.command("sweep-report")
@params_option
@fail_cleanly
def sweep_report(params_path: str) -> None:
    """Write reports/sweep/: each technique's val loss, train loss, gap and test accuracy
    against its strength, and the best strength by val loss with its interval."""
    from .sweep import sweep_report as write_sweep_report

    params, layout = _load(params_path)
    write_sweep_report(params, layout)
    click.echo(f"sweep report: {(layout.sweep_reports / 'sweep.md').relative_to(layout.root)}")


@main.command("compare")
@click.option("--by", required=True, help="The logged parameter to group by, e.g. label_noise.")
@click.option(
    "--where", multiple=True, metavar="KEY=VALUE",
    help="Keep only runs whose parameter KEY is VALUE (repeatable), e.g. dataset=mnist-5k.",
)  # fmt: skip
@click.option("--experiment", default=None, help="MLflow experiment (default: params.yaml's).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: reports/compare/BY).")  # fmt: skip
@params_option
@fail_cleanly
def compare_command(
    by: str, where: tuple[str, ...], experiment: str | None, out: str | None, params_path: str
) -> None:
    """One report across studies from the MLflow store: each variant's gap and test accuracy
    against the baseline, per value of a logged parameter (label noise, training-set size)."""
    from .compare import compare, parse_where

    params, layout = _load(params_path)
    conditions = parse_where(where)
    target = Path(out) if out else layout.reports / "compare" / by
    compare(experiment or params.mlflow.experiment, by, conditions, params.report.baseline,
            list(params.variants), target)  # fmt: skip
    click.echo(f"comparison: {target / 'compare.md'}")


@main.command()
@click.option(
    "--executor", type=click.Choice(EXECUTORS), default="inprocess", show_default=True,
    help="Who trains the grid: this process (seeds side by side), `dvc repro`, or one Ray task "
    "per run.",
)  # fmt: skip
@click.option(
    "--address", default=None, metavar="HOST:PORT",
    help="Ray: join this cluster (as `ray start --head` prints it; `auto` finds a local one). "
    "Default: RAY_ADDRESS, else start a Ray instance on this machine.",
)  # fmt: skip
@click.option(
    "--cpus-per-run", type=click.FloatRange(min=0, min_open=True), default=None,
    help="Ray: CPUs each run asks for (its torch threads: the whole part, at least 1); a "
    "fraction packs several runs per CPU.  [default: 1]",
)  # fmt: skip
@click.option(
    "--gpus-per-run", type=click.FloatRange(min=0), default=None,
    help="Ray: GPUs each run asks for; a fraction packs runs on one GPU.  [default: 1 where "
    "train.device is cuda, or auto on a machine with a GPU; else 0]",
)  # fmt: skip
@params_option
@click.pass_context
@fail_cleanly
def study(
    ctx: click.Context,
    executor: str,
    address: str | None,
    cpus_per_run: float | None,
    gpus_per_run: float | None,
    params_path: str,
) -> None:
    """prepare, train every variant × seed, report: the whole study in one command.

    With `--executor ray`, a run that fails (an error, its worker killed, its node lost) does
    not stop the others: the report names it, and the command exits with 1.
    """
    from . import executors

    params, layout = _load(params_path)
    ray_only = {"--address": address, "--cpus-per-run": cpus_per_run,
                "--gpus-per-run": gpus_per_run}  # fmt: skip
    given = [flag for flag, value in ray_only.items() if value is not None]
    if executor != "ray" and given:
        raise ConfigError(f"{', '.join(given)} only apply with --executor ray")
    if executor == "dvc":
        executors.run_with_dvc(params_path)
        print_next_steps(layout)
        return
    if executor == "ray":
        address = executors.ray_address(address)
        if gpus_per_run is None:
            gpus_per_run = executors.default_gpus(params)
        executors.check_ray_settings(address, params, gpus_per_run)
        missing = executors.run_on_ray(
            params, layout, address, cpus_per_run or 1.0, gpus_per_run,
            prepare_data=lambda: ctx.invoke(prepare, params_path=params_path),
        )  # fmt: skip
    else:
        ctx.invoke(prepare, params_path=params_path)
        executors.run_in_process(params, layout)
        missing = []
    _report(params, layout, log=True, join=False)
    print_next_steps(layout)
    if missing:
        names = ", ".join(str(m["run_name"]) for m in missing)
        raise StudyIncomplete(
            f"{len(missing)} run(s) did not finish: {names} (the report names them and why)"
        )


def print_next_steps(layout: Layout) -> None:
    from .tracking import tracking_uri

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        ui_hint = f"MLflow UI: open {uri} (the tracking server serves it)"
    else:
        ui_hint = (
            f"MLflow UI: python -m pipeline ui  (or: make ui; mlflow ui --backend-store-uri "
            f"{uri} --host 127.0.0.1), then open http://127.0.0.1:5000"
        )
    click.echo(f"\nReport: {layout.reports / 'gap_report.md'}\n{ui_hint}")


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; anything but loopback exposes the store to the network.",
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
def ui(host: str, port: int) -> None:
    """Start the MLflow UI against the project's tracking store."""
    import subprocess

    from .tracking import tracking_uri

    click.echo(f"MLflow UI on http://{host}:{port} (store: {tracking_uri()}); Ctrl-C stops it")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(),
               "--host", host, "--port", str(port)]  # fmt: skip
    try:
        sys.exit(subprocess.call(command))
    except KeyboardInterrupt:
        sys.exit(130)


@main.command("next-steps", hidden=True)
def next_steps() -> None:
    """Where the report is and how to open the MLflow UI (printed after `make study`)."""
    print_next_steps(Layout(project_root()))
