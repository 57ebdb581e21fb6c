"""What every command shares: one line and a non-zero exit for a mistake, an orderly stop on
Ctrl-C or SIGTERM, the `--params` option, and its stage, imported only once it runs."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from ..core.config import COMBINED, Params, Strength
from ..core.errors import (
    ConfigError,
    DataError,
    MetricsLost,
    RunsDiverged,
    StudyIncomplete,
    TrainingDiverged,
)
from ..core.loading import load_params
from ..core.paths import Layout, project_root
from ..core.signals import cli_handles_sigterm, interrupt_name
from ..tracking import store

BAD_INPUT = 2  # exit code for anything the user can fix in params.yaml, flags or data files


class OneLineErrors(click.Group):
    """A command group whose usage mistakes (an unknown option, a value of the wrong type, a
    missing argument) are one line and exit 2, like every other mistake, instead of click's
    usage block."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:  # a bare command: its help, as click does
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "python -m pipeline"
            click.echo(f"error: {e.format_message()} (see `{where} --help`)", err=True)
            sys.exit(BAD_INPUT)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


def fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's own errors into one line on stderr and a non-zero exit; turn SIGINT
    and SIGTERM into an orderly stop (exit 130 / 143)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cli_handles_sigterm()
        try:
            return command(*args, **kwargs)
        except (ConfigError, DataError) as e:
            fail(str(e), BAD_INPUT)
        except (TrainingDiverged, RunsDiverged, MetricsLost, StudyIncomplete) as e:
            fail(str(e), 1)
        except KeyboardInterrupt as e:
            name, code = interrupt_name(e)
            # Only the train stage keeps checkpoints to continue from.
            resume = ", or use `train --resume`" if command.__name__ == "train" else ""
            click.echo(
                f"interrupted ({name}): open MLflow runs are marked KILLED; no stage output "
                f"was written (the stage reruns in full{resume})",
                err=True,
            )
            sys.exit(code)

    return wrapper


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    store.mark_launcher_failed(message)
    sys.exit(code)


def load(params_path: str) -> tuple[Params, Layout]:
    """params.yaml and the project's layout, once the environment's settings are checked."""
    store.check_tracking_uri()
    return load_params(Path(params_path)), Layout(project_root())


def stage(name: str) -> ModuleType:
    """The module of stage `name`, imported once its command runs: the stages bring torch,
    MLflow and pandas (seconds), which `--help` and a mistake in params.yaml should not wait
    for."""
    return importlib.import_module(f"..stages.{name}", __package__)


params_option = click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The study's configuration.",
)


def key_values(option: str, pairs: tuple[str, ...]) -> dict[str, str]:
    """`KEY=VALUE` arguments as a dict, or one line naming the one that is not."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {pair!r}: expected KEY=VALUE, e.g. dataset=mnist-5k")
        found[key] = value
    return found


def parse_strength(params: Params, technique: str, text: str) -> Strength:
    """A strength as the command line gives it: a number, or for the joint grid one per axis,
    `dropout=0.3,weight_decay=1.0`, its axes those of params.yaml's `sweep.combined`."""
    if technique != COMBINED:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"sweep strength {text!r} is not a number") from None
    pairs = [part.partition("=") for part in text.split(",")]
    axes, wanted = [name for name, _, _ in pairs], list(params.sweep.combined)
    if axes != wanted:
        raise ConfigError(
            f"a point of {COMBINED} over {', '.join(axes)}, but params.yaml's sweep.combined is "
            f"over {', '.join(wanted) or 'nothing'}: write sweep-stages/dvc.yaml again "
            "(`python -m pipeline sweep-stages > sweep-stages/dvc.yaml`)"
        )
    try:
        return tuple(float(value) for _, _, value in pairs)
    except ValueError:
        raise ConfigError(f"sweep strength {text!r}: a number for each technique") from None
