"""`study`: the stages in one process (prepare, train every variant × seed, the rounds that add
seeds where verdicts are undecided, report), the seeds run here or as Ray tasks; or the stages
of dvc.yaml by `dvc repro`. The one command that runs several stages, so it lives beside the
command line, not among the stages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import click

from ..core.errors import ConfigError, StudyIncomplete
from ..core.paths import project_root
from ..core.signals import interrupt_name
from ..executors import EXECUTORS
from ..tracking import store, ui_view
from .common import fail_cleanly, load, params_option, stage

# How long `dvc repro` may take to stop after an interrupt (its stage ends its runs KILLED and
# DVC releases its lock) before its process group is killed outright.
DVC_STOP_SECONDS = 120


def repro_with_dvc() -> int:
    """`dvc repro dvc.yaml` in a process group of its own, and its exit code.

    An interrupt here (Ctrl-C, SIGTERM) reaches the group once, as Ctrl-C: the stage it runs
    ends its MLflow runs KILLED, DVC, which ignores Ctrl-C while a stage runs, then fails that
    stage and releases its lock. The group is waited for, so nothing goes on as an orphan; a
    second interrupt, or a group that has not stopped in DVC_STOP_SECONDS, kills it."""
    process = subprocess.Popen(["dvc", "repro", "dvc.yaml"], start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=DVC_STOP_SECONDS)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise


def record_with_dvc(params_path: str, dvcfile: str = "dvc.yaml") -> None:
    """The outputs of a study made here or on Ray, recorded in the lock file of `dvcfile`
    (`dvc commit`), as its stages would have made them: the same code, params.yaml, data. The
    next `dvc repro` then finds them up to date instead of training them again. Not for a
    study of another params file, whose outputs the stages would not make, nor outside a DVC
    repository."""
    root = project_root()
    if not (root / ".dvc").is_dir() or not (root / dvcfile).is_file():
        return
    if Path(params_path).resolve() != (root / "params.yaml").resolve():
        click.echo(f"note: outputs of {params_path}, not params.yaml: not recorded by DVC")
        return
    lock = Path(dvcfile).with_suffix(".lock")
    try:  # DVC of this environment, whether or not its bin/ is on PATH
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", dvcfile],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError as error:
        click.echo(f"note: `dvc commit` could not run, {lock} unchanged: {error}", err=True)
        return
    if done.returncode == 0:
        click.echo(f"{lock}: the outputs recorded (`dvc repro` finds them up to date)")
    else:  # the outputs stand without; DVC would train them again
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        click.echo(f"note: `dvc commit` failed, {lock} unchanged: {reason}", err=True)


@click.command()
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="inprocess",
    show_default=True,
    help="Who trains the grid: this process (each variant's seeds as one stack), `dvc repro`, "
    "or one Ray task per stack.",
)
@click.option(
    "--address",
    default=None,
    metavar="HOST:PORT",
    help="Ray: join this cluster (as `ray start --head` prints it; `auto` finds a local one). "
    "Default: RAY_ADDRESS, else start a Ray instance on this machine.",
)
@click.option(
    "--cpus-per-run",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Ray: CPUs each task asks for (a task trains one variant's seeds as one stack); a "
    "fraction packs several tasks per CPU.  [default: 1]",
)
@click.option(
    "--gpus-per-run",
    type=click.FloatRange(min=0),
    default=None,
    help="Ray: GPUs each task asks for; a fraction packs tasks on one GPU.  [default: 1 where "
    "train.device is cuda, or auto on a machine with a GPU; else 0]",
)
@params_option
@fail_cleanly
def study(
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
    params, layout = load(params_path)
    params.check_rounds()  # before anything is prepared or trained
    ray = {"--address": address, "--cpus-per-run": cpus_per_run, "--gpus-per-run": gpus_per_run}
    given = [flag for flag, value in ray.items() if value is not None]
    if executor != "ray" and given:
        raise ConfigError(f"{', '.join(given)} only apply with --executor ray")
    if executor == "dvc":
        if Path(params_path).resolve() != (project_root() / "params.yaml").resolve():
            raise ConfigError(
                "--executor dvc reads params.yaml, as dvc.yaml says; --params is not used"
            )
        try:
            code = repro_with_dvc()  # ends with its report stage
        except KeyboardInterrupt as e:
            name, code = interrupt_name(e)
            click.echo(
                f"interrupted ({name}): `dvc repro` and its stage have stopped, its MLflow runs "
                "marked KILLED; finished stages keep their outputs, the next `dvc repro` "
                "reruns the rest",
                err=True,
            )
        if code != 0:
            sys.exit(code)
        stage("report").publish_if_missing(params, layout)
        click.echo(ui_view.next_steps(layout.gap_report, params.mlflow.experiment))
        return
    # Ray's settings are checked before anything is prepared or trained.
    on_ray = stage("train_on_ray") if executor == "ray" else None
    plan = on_ray.plan(params, address, cpus_per_run, gpus_per_run) if on_ray else None
    missing = []
    if on_ray:
        with on_ray.session(plan):  # connected first: Ray refuses what it cannot run
            prepared = stage("prepare").prepare(params, layout)
            missing = on_ray.train_on_ray(params, layout, prepared, plan)
            on_ray_rounds = on_ray.RoundsOnRay(params, plan, prepared)
            stage("rounds").rounds(params, layout, on_ray_rounds, store.context_tags())
            missing += on_ray_rounds.missing
    else:
        stage("prepare").prepare(params, layout)
        for name in params.variants:
            stage("train").train_variant(params, layout, name)
        stage("rounds").rounds(params, layout)
    stage("report").report(params, layout, log=True, join=False)
    if not missing:
        record_with_dvc(params_path)
    click.echo(ui_view.next_steps(layout.gap_report, params.mlflow.experiment))
    if missing:
        raise StudyIncomplete(
            f"{len(missing)} run(s) did not finish: "
            f"{', '.join(m.run_name for m in missing)} (the report names them and why)"
        )
