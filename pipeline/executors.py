"""Who runs the study's grid (every variant × seed, see `spec.study_specs`).

- `inprocess` (default): this process, variant by variant, seeds side by side on the cores.
- `dvc`: `dvc repro`, the stages of dvc.yaml (each variant one stage; DVC skips what is up to
  date). Variations of the whole study run in parallel with `dvc exp run --queue -S ...` and
  `dvc queue start -j N` (see `make noise`).
- `ray`: one Ray task per run, on a local Ray instance or a cluster (`ray_grid`).

Every executor leaves the same outputs (`models/`, `metrics/`) for the same report.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .config import Params
from .errors import ConfigError
from .paths import Layout

if TYPE_CHECKING:
    from .ray_grid import Finished
    from .spec import RunSpec

EXECUTORS = ("inprocess", "dvc", "ray")


def run_in_process(params: Params, layout: Layout) -> None:
    from .train import train_stage

    for name in params.variants:
        train_stage(params, layout, name)


def run_with_dvc(params_path: str) -> None:
    """`dvc repro` of the study's pipeline, which ends with its report stage."""
    if Path(params_path).resolve() != (Path.cwd() / "params.yaml").resolve():
        raise ConfigError(
            "--executor dvc reads params.yaml, as dvc.yaml says; --params is not used"
        )
    code = subprocess.call(["dvc", "repro", "dvc.yaml"])
    if code != 0:
        raise SystemExit(code)


def check_ray_settings(address: str | None) -> None:
    """Fail before anything runs where Ray is missing or the runs could not share a store."""
    from .tracking import user_tracking_uri

    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install -e '.[cluster]' (make installs it)"
        ) from None
    uri = user_tracking_uri() or "sqlite"
    if address is not None and (uri.startswith("sqlite") or uri.startswith("file")
                                or "://" not in uri):  # fmt: skip
        raise ConfigError(
            "--address joins a cluster whose workers cannot write this machine's SQLite store; "
            "start a shared tracking server (make server) and export MLFLOW_TRACKING_URI"
        )


def run_on_ray(
    params: Params, layout: Layout, address: str | None, cpus: float, gpus: float
) -> list[dict[str, object]]:
    """Train the grid as Ray tasks and write each variant's outputs from what came back.
    Returns the runs that did not finish (they are also in the variants' `missing.json`)."""
    from .prepare import load_prepared
    from .ray_grid import Missing, Resources, run_grid
    from .spec import study_specs
    from .tracking import context_tags

    specs = study_specs(params)

    done = 0

    def progress(spec: RunSpec, outcome: Finished | Missing) -> None:
        nonlocal done
        done += 1
        head = f"[{done}/{len(specs)}] {spec.run_name}"
        if isinstance(outcome, Missing):
            click.echo(f"{head}: FAILED: {outcome.reason}", err=True)
            return
        s = outcome.run["summary"]
        click.echo(
            f"{head}: best epoch {s['best_epoch']:.0f}, val loss {s['best_val_loss']:.4f}, "
            f"gap at last epoch {s['loss_gap_last']:+.4f}, test accuracy "
            f"{s['test_accuracy']:.4f}",
            err=True,
        )

    finished, missing = run_grid(
        specs, params, load_prepared(layout.prepared), address, Resources(cpus, gpus),
        context_tags(), progress,
    )  # fmt: skip
    for name in params.variants:
        write_variant(
            layout,
            name,
            sorted((f for f in finished if f.run["variant"] == name), key=lambda f: f.run["seed"]),
            [m.to_json() for m in missing if m.variant == name],
        )
    return [m.to_json() for m in missing]


def write_variant(
    layout: Layout, variant: str, finished: list[Finished], missing: list[dict[str, object]]
) -> None:
    from .train import write_variant_outputs

    staging = Path(tempfile.mkdtemp(prefix=f".train-{variant}-", dir=layout.root))
    try:
        models = staging / "models"
        for f in finished:
            folder = models / f"seed{f.run['seed']}"
            folder.mkdir(parents=True)
            for name, content in f.weights.items():
                (folder / name).write_bytes(content)
        runs = [f.run for f in finished]
        history = [row for f in finished for row in f.history]
        write_variant_outputs(layout, variant, runs, history, models, missing)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
