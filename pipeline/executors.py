"""Who runs the study's grid (every variant × seed, see `spec.study_specs`).

- `inprocess` (default): this process, variant by variant, seeds side by side on the cores.
- `dvc`: `dvc repro`, the stages of dvc.yaml (each variant one stage; DVC skips what is up to
  date). Variations of the whole study run in parallel with `dvc exp run --queue -S ...` and
  `dvc queue start -j N` (see `make noise`).
- `ray`: one Ray task per run, on a local Ray instance or a cluster (`ray_grid`).

Every executor leaves the same outputs (`models/`, `metrics/`) for the same report.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .config import Params
from .errors import ConfigError, StudyIncomplete
from .paths import Layout
from .signals import signals_held

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


def ray_address(address: str | None) -> str | None:
    """--address, else RAY_ADDRESS (which ray.init would follow anyway)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_ray_settings(address: str | None, params: Params, gpus: float) -> None:
    """Fail before anything runs where Ray is missing, the runs could not share a store, or
    the GPU settings contradict each other."""
    from .tracking import user_tracking_uri

    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install -e '.[cluster]' (make installs it)"
        ) from None
    # A server that also serves the artifacts; a bare database URI would leave each worker's
    # artifacts on its own disk.
    shared = (user_tracking_uri() or "").startswith(("http://", "https://", "databricks"))
    if address is not None and not shared:
        raise ConfigError(
            f"joining the Ray cluster at {address} needs a tracking server all its workers "
            "reach: start one (make server) and export MLFLOW_TRACKING_URI=http://HOST:PORT"
        )
    if address is not None:
        check_reachable(address)
    if params.train.device.startswith("cuda") and gpus == 0:
        raise ConfigError(f"train.device is {params.train.device!r} but --gpus-per-run is 0")


def check_reachable(address: str) -> None:
    """Something must listen at HOST:PORT: ray.init would otherwise retry for minutes."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not port.isdigit():  # `auto`, or a form Ray resolves itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {address}: {e.strerror or e}") from None


def default_gpus(params: Params) -> float:
    """One GPU per run where the runs train on CUDA: `train.device: cuda`, or `auto` on a
    driver that sees a GPU (a CPU-only driver of a GPU cluster passes --gpus-per-run)."""
    if params.train.device.startswith("cuda"):
        return 1.0
    if params.train.device == "auto":
        import torch

        return 1.0 if torch.cuda.is_available() else 0.0
    return 0.0


def run_on_ray(
    params: Params,
    layout: Layout,
    address: str | None,
    cpus: float,
    gpus: float,
    prepare_data: Callable[[], None],
) -> list[dict[str, object]]:
    """Connect to Ray, prepare the data, train the grid as Ray tasks, and write each variant's
    outputs from what came back. Returns the runs that did not finish (they are also in the
    variants' `missing.json`). Where no run of the baseline finished, nothing is written: the
    old outputs and report stay, consistent with each other."""
    from .prepare import load_prepared
    from .ray_grid import Missing, Resources, ray_session, run_grid
    from .spec import study_specs
    from .tracking import context_tags, launcher_run_id
    from .train import summary_line

    specs = study_specs(params)
    done = 0

    def progress(spec: RunSpec, outcome: Finished | Missing) -> None:
        nonlocal done
        done += 1
        head = f"[{done}/{len(specs)}] {spec.run_name}"
        if isinstance(outcome, Missing):
            click.echo(f"{head}: FAILED: {outcome.reason}", err=True)
            return
        click.echo(f"{head}: {summary_line(outcome.run['summary'])}", err=True)

    resources = Resources(cpus, gpus)
    with ray_session(address, resources, launcher_run_id()):
        prepare_data()
        finished, missing = run_grid(specs, params, load_prepared(layout.prepared), resources,
                                     context_tags(), progress)  # fmt: skip
    lost = [m.to_json() for m in missing]
    baseline = params.report.baseline
    if not any(f.run["variant"] == baseline for f in finished):
        names = ", ".join(str(m["run_name"]) for m in lost)
        raise StudyIncomplete(
            f"no run of the baseline {baseline!r} finished, so nothing can be compared; "
            f"outputs and report are left as they were. Did not finish: {names}"
        )
    # Every variant's outputs, or none: a signal waits until they are written.
    with signals_held():
        for name in params.variants:
            runs = sorted((f for f in finished if f.run["variant"] == name),
                          key=lambda f: f.run["seed"])  # fmt: skip
            write_variant(layout, name, runs, [m for m in lost if m["variant"] == name])
    return lost


def write_variant(
    layout: Layout, variant: str, finished: list[Finished], missing: list[dict[str, object]]
) -> None:
    from .train import variant_staging, write_variant_outputs

    with variant_staging(layout, variant) as staging:
        models = staging / "models"
        for f in finished:
            folder = models / f"seed{f.run['seed']}"
            folder.mkdir(parents=True)
            for name, content in f.weights.items():
                (folder / name).write_bytes(content)
        runs = [f.run for f in finished]
        history = [row for f in finished for row in f.history]
        write_variant_outputs(layout, variant, runs, history, models, missing)
