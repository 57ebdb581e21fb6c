"""`sweep-stages/dvc.yaml`, written from the registry of techniques: one stage per technique
with a strength path, each a `matrix` over its strengths (the seeds train together), then the
report, and the tuned study (`choose`, `tuned-report`); and a stage for the joint grid of
params.yaml's `sweep.combined`, a matrix over its techniques.

`python -m pipeline sweep-stages > sweep-stages/dvc.yaml` writes it again after a technique is
added to the registry or `sweep.combined` takes other techniques; a test keeps the committed
file equal to what this writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.techniques import SWEPT

HEADER = """\
# Strength paths: `dvc repro sweep-stages/dvc.yaml` (or `make sweep`). Kept apart from the study's
# dvc.yaml so that a plain `dvc repro` stays the quick default study.
# One stage instance per (technique, strength), its seeds trained together: the strength is in
# the command, not in a params dependency, so adding a strength to `sweep` in params.yaml trains
# only its new points (any change to the `train` section, seeds included, retrains them all, as
# it does the study's train stages). Paths are relative to the project root (wdir).
# Written by `python -m pipeline sweep-stages` from the registry of techniques
# (pipeline/core/techniques.py): write it again rather than editing it by hand.
vars:
  - ../params.yaml

stages:
"""

STAGE = """\
  sweep-{t}:
    wdir: ..
    matrix:
      strength: ${{sweep.{t}}}
    cmd: python -m pipeline sweep-run {t} ${{item.strength}} --out sweeps/{t}/${{item.strength}}
    deps: {deps}
    params: {params}
    outs:
      - sweeps/{t}/${{item.strength}}

"""
# The first stage names its dependencies and params (YAML anchors); the others refer to them.
FIRST_DEPS = "&sweep_deps\n      - data/prepared\n{code}\n      - networks"
FIRST_PARAMS = "&sweep_params\n      - model\n      - train\n      - variants.${{report.baseline}}"

REPORT = """\
  sweep-report:
    wdir: ..
    cmd: python -m pipeline sweep-report
    deps:
      - sweeps
      - metrics/${{report.baseline}}/runs.json
      - metrics/${{report.baseline}}/history.csv
{code}
    params:
      - sweep
      - train.seeds
      - report
    outs:
      - reports/sweep:
          cache: false
"""

# The code each kind of stage runs, as DVC dependencies: the package's layers it imports and
# its stage module (tests/project/test_stage_deps.py keeps them so).
POINT_CODE = (
    "core",
    "data",
    "training",
    "tracking",
    "executors",
    "outputs",
    "stages/sweep_point.py",
)
REPORT_CODE = ("core", "outputs", "analysis", "reports", "stages/sweep_report.py")
# The tuned stages train the rounds' seeds as a point does, then choose and report.
TUNED_CODE = (*POINT_CODE[:-1], "analysis", "reports", "stages/tuned.py")

# The tuned study: within each seed, each technique's strength of lowest val loss, with seeds
# added in rounds while undecided (`choose`: a file to read, and the rounds' seeds), then
# those runs against the baseline on the test split.
TUNED = """\

  choose:
    wdir: ..
    cmd: python -m pipeline choose
    deps:
      - data/prepared
      - sweeps
      - metrics  # the baseline's runs, and those of a variant that is a technique alone
      - rounds  # the seeds the study's rounds added to such a variant
{code}
      - networks
    params:
      - model
      - train
      - sweep
      - variants
      - rounds
      - mlflow
      - report
    outs:
      - reports/tuned/chosen.csv:
          cache: false
      # kept between runs: a seed trained with the same settings beside the same first seeds
      # is reused, so adding a strength trains the rounds' seeds of that strength only
      - tuned-rounds:
          persist: true

  tuned-report:
    wdir: ..
    cmd: python -m pipeline tuned-report
    deps:
      - reports/tuned/chosen.csv
      - tuned-rounds
      - sweeps
      - metrics
      - rounds
{code}
    params:
      - sweep
      - train.seeds
      - variants
      - rounds
      - report
    outs:
      - reports/tuned/tuned.md:
          cache: false
      - reports/tuned/summary.json:
          cache: false
"""


def _deps(files: tuple[str, ...]) -> str:
    return "\n".join(f"      - pipeline/{name}" for name in files)


# The joint grid: a stage instance per combination of its techniques' strengths (DVC's
# matrix over several keys), its point named by each technique's strength.
JOINT = """\
  sweep-combined:
    wdir: ..
    matrix:
{axes}
    cmd: python -m pipeline sweep-run combined {point} --out sweeps/combined/{point}
    deps: *sweep_deps
    params: *sweep_params
    outs:
      - sweeps/combined/{point}

"""


def sweep_dvc_yaml(joint: Sequence[str] = ()) -> str:
    """The text of sweep-stages/dvc.yaml for the techniques of the registry, and a joint grid
    over the techniques `joint` (params.yaml's `sweep.combined`), if any."""
    first, *rest = SWEPT
    deps = FIRST_DEPS.format(code=_deps(POINT_CODE))
    text = HEADER + STAGE.format(t=first, deps=deps, params=FIRST_PARAMS.format())
    text += "".join(STAGE.format(t=t, deps="*sweep_deps", params="*sweep_params") for t in rest)
    if joint:
        axes = "\n".join(f"      {t}: ${{sweep.combined.{t}}}" for t in joint)
        point = ",".join(f"{t}=${{item.{t}}}" for t in joint)
        text += JOINT.format(axes=axes, point=point)
    return text + REPORT.format(code=_deps(REPORT_CODE)) + TUNED.format(code=_deps(TUNED_CODE))
