"""`tuned`: the strength paths and the tuned study (sweep-stages/dvc.yaml) in one process, then
recorded in its dvc.lock, as `study` does for dvc.yaml.

Under `dvc repro` each point of a path is a stage, a process of its own, whose start-up (the
libraries' imports, the store's first touch) costs about as much as training its seeds on this
data; in one process a point costs its training. DVC still decides what is stale: the points
`dvc status` names are trained here, as the commands of their stages say (DVC's own rendering
of each strength, so the outputs land where the stages would put them), then the report and
the tuned stages run, and `dvc commit` records them all. A point that is up to date is not
trained again, as under `dvc repro`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..core.config import Params
from ..core.errors import ConfigError
from ..core.paths import Layout, project_root
from .common import fail_cleanly, load, params_option, parse_strength, stage
from .study import record_with_dvc

SWEEP_FILE = "sweep-stages/dvc.yaml"


def stale_points(root: Path) -> list[tuple[str, str, str]]:
    """The points of sweep-stages/dvc.yaml that `dvc status` finds stale, as their commands
    give them: (technique, strength as written, output folder); a ConfigError where a stage of
    dvc.yaml they stand on (the data, the baseline's runs, the study's rounds) is stale."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stale = repo.status(targets=[SWEEP_FILE], with_deps=True)
        study = sorted(name for name in stale if not name.startswith(f"{SWEEP_FILE}:"))
        if study:
            raise ConfigError(
                f"the study is not up to date ({', '.join(study)} changed): run `dvc repro` "
                "first; the strength paths stand on its baseline"
            )
        stages = [s for s in repo.index.stages if s.path_in_repo == SWEEP_FILE]
        points = []
        for s in stages:
            words = shlex.split(s.cmd if isinstance(s.cmd, str) else " ".join(s.cmd))
            if s.addressing in stale and words[3:4] == ["sweep-run"]:
                technique, strength, flag, out = words[4:8]
                assert flag == "--out", s.cmd
                points.append((technique, strength, out))
    return points


@click.command()
@params_option
@fail_cleanly
def tuned(params_path: str) -> None:
    """The strength paths and each technique at its best strength, in one process.

    Trains the points of sweep-stages/dvc.yaml that `dvc status` finds stale, then the
    paths' report, the choice (with its rounds) and the tuned report, and records them in
    sweep-stages/dvc.lock: `dvc repro sweep-stages/dvc.yaml` then finds them up to date.
    """
    params, layout = load(params_path)
    root = project_root()
    if Path(params_path).resolve() != (root / "params.yaml").resolve():
        raise ConfigError("tuned runs sweep-stages/dvc.yaml's stages, which read params.yaml")
    run_tuned(params, layout, root)


def run_tuned(params: Params, layout: Layout, root: Path) -> None:
    """Every stale point trained here, the reports and the choice made, all recorded."""
    params.check_rounds()  # before anything is trained
    parsed = [(t, parse_strength(params, t, s), out) for t, s, out in stale_points(root)]
    for technique, strength, _ in parsed:
        params.sweep.variant(technique, strength)  # every point checked before one trains
    click.echo(f"{len(parsed)} point(s) to train", err=True)
    sweep_point = stage("sweep_point")
    for technique, strength, out in parsed:
        sweep_point.sweep_run(params, layout, technique, strength, None, out)
    stage("sweep_report").sweep_report(params, layout)
    tuned_stage = stage("tuned")
    tuned_stage.choose(params, layout)
    tuned_stage.tuned_report(params, layout)
    record_with_dvc(str(root / "params.yaml"), SWEEP_FILE)
