"""End to end: `mlflow run` with overrides, and a tiny study against a real `mlflow server`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from scipy import stats

from pipeline.tracking import ui_view
from tests.support.browser import Browser
from tests.support.repo import TINY_PARAMS, Runner, make_runner, scratch_repo
from tests.support.servers import get_json, mlflow_server

pytestmark = pytest.mark.e2e

PY = sys.executable
EXPERIMENT = TINY_PARAMS["mlflow"]["experiment"]
ASSISTANT_SHOWN = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"  # the UI's own key


def mlflow_run(run_in: Runner, *params: str, check: bool = False):
    args = ["mlflow", "run", ".", "-e", "train", "--env-manager", "local"]
    args += ["--experiment-name", EXPERIMENT]
    for p in params:
        args += ["-P", p]
    return run_in(*args, check=check)


def runs_of(repo: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_mlflow_run_trains_one_variant_with_overrides(tiny_repo: Path, run_in: Runner) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    result = mlflow_run(
        run_in, "variant=dropout", "dropout=0.3", "lr=1e-2", "lr_schedule=cosine", check=True
    )
    assert "succeeded" in result.stderr

    runs = runs_of(tiny_repo)
    assert len(runs) == 1, "mlflow run must fill the run it started, not create another"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "dropout-seed0"
    # The overrides as MLflow logged them, and the rest resolved from params.yaml.
    assert run.data.params["dropout"] == "0.3"
    assert run.data.params["lr"] == "1e-2"
    assert run.data.params["l2"] == "0.0"
    assert run.data.params["epochs"] == str(TINY_PARAMS["train"]["epochs"])
    assert run.data.tags["variant"] == "dropout"
    client = MlflowClient(tracking_uri=f"sqlite:///{tiny_repo / 'mlflow.db'}")
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3, 4]
    # The learning-rate schedule: its param, and each epoch's learning rate beside the losses
    # (cosine over 4 epochs: lr·(1 + cos(π·(e−1)/4))/2).
    assert run.data.params["lr_schedule"] == "cosine"
    lrs = sorted(client.get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)
    assert [m.step for m in lrs] == [1, 2, 3, 4]
    cosine = [1e-2 * (1 + math.cos(math.pi * (e - 1) / 4)) / 2 for e in (1, 2, 3, 4)]
    assert [m.value for m in lrs] == pytest.approx(cosine, rel=1e-9)
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    assert len(models) == 1
    # A run that differs from params.yaml lives in MLflow only: DVC's outputs are untouched.
    assert not (tiny_repo / "models").exists()
    assert not (tiny_repo / "metrics").exists()


def test_mlflow_run_keeps_param_names_of_dvc_runs(tiny_repo: Path, run_in: Runner) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    run_in(PY, "-m", "pipeline", "train", "--variant", "l2", "--seed", "1")
    mlflow_run(run_in, "variant=l2", "l2=0.01", check=True)
    runs = runs_of(tiny_repo)
    assert len(runs) == 2
    assert runs[0].data.params.keys() == runs[1].data.params.keys()
    assert runs[0].data.metrics.keys() == runs[1].data.metrics.keys()


@pytest.mark.parametrize(
    ("override", "needle"),
    [("dropout=1.5", "dropout"), ("lr=abc", "train.lr"), ("variant=nope", "unknown variant")],
)
def test_mlflow_run_bad_value_fails_the_run(
    tiny_repo: Path, run_in: Runner, override: str, needle: str
) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    params = [override] if override.startswith("variant=") else ["variant=dropout", override]
    result = mlflow_run(run_in, *params)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    runs = runs_of(tiny_repo)
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert needle in runs[0].data.tags["error"]
    assert "val_loss" not in runs[0].data.metrics, "nothing may be trained"


# --- a real tracking server on loopback -------------------------------------------------------


@dataclass(frozen=True)
class ServedStudy:
    """The tiny study run against `mlflow server`: the server's URL, the repository it ran in
    and what it printed."""

    url: str
    repo: Path
    stdout: str


@pytest.fixture(scope="module")
def served_study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStudy]:
    """One server (SQLite store, artifacts it serves) and one study logged to it, which the
    tests of this module only read."""
    store = tmp_path_factory.mktemp("server")
    repo = scratch_repo(tmp_path_factory.mktemp("served") / "repo", TINY_PARAMS)
    with mlflow_server(f"sqlite:///{store / 'mlflow.db'}", store / "artifacts") as url:
        study = make_runner(repo)(PY, "-m", "pipeline", "study", MLFLOW_TRACKING_URI=url)
        yield ServedStudy(url, repo, study.stdout)


def test_study_against_a_tracking_server(served_study: ServedStudy) -> None:
    tracking_server, tiny_repo = served_study.url, served_study.repo
    assert not (tiny_repo / "mlflow.db").exists(), "the server, not a local file, holds the runs"

    api = f"{tracking_server}/api/2.0/mlflow"
    exp = get_json(f"{api}/experiments/get-by-name?experiment_name={EXPERIMENT}")["experiment"]
    found = get_json(
        f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
    )["runs"]
    by_name = {r["info"]["run_name"]: r for r in found}
    expected = {
        f"{v}-seed{s}" for v in TINY_PARAMS["variants"] for s in TINY_PARAMS["train"]["seeds"]
    }
    assert set(by_name) == expected | {"report"} | set(TINY_PARAMS["variants"])
    colours = {}  # the report gives a variant's runs its colour, one of its own
    for name in expected:
        run = by_name[name]
        assert run["info"]["status"] == "FINISHED"
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        colours.setdefault(tags["variant"], set()).add(tags[ui_view.COLOR_TAG])
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert {"dropout", "l1", "l2", "weight_decay", "lr", "seed"} <= set(params)
        history = get_json(
            f"{api}/metrics/get-history?run_id={run['info']['run_id']}&metric_key=val_loss"
        )["metrics"]
        assert sorted(m["step"] for m in history) == [1, 2, 3, 4]
        artifacts = get_json(f"{api}/artifacts/list?run_id={run['info']['run_id']}&path=weights")[
            "files"
        ]
        assert {Path(f["path"]).name for f in artifacts} == {
            "model.safetensors",
            "architecture.json",
            "normalization.safetensors",
        }
    assert colours == {v: {c} for v, c in ui_view.colours(TINY_PARAMS["variants"]).items()}
    models = get_json(
        f"{api}/logged-models/search",
        {"experiment_ids": [exp["experiment_id"]], "max_results": 100},
    )["models"]
    assert len(models) == len(expected)
    assert not (tiny_repo / "mlruns").exists(), "artifacts go to the server"


def test_a_study_made_without_dvc_is_recorded_in_dvc_lock(served_study: ServedStudy) -> None:
    """`study` trains in its own process, not under `dvc repro`: it records what it made in
    dvc.lock, so DVC finds every stage up to date instead of training it again."""
    assert "dvc.lock: the outputs recorded" in served_study.stdout
    status = make_runner(served_study.repo)("dvc", "status", "dvc.yaml").stdout
    assert "Data and pipelines are up to date." in status, status


def test_each_variant_is_a_run_over_its_seeds_with_means_and_error_bars(
    served_study: ServedStudy,
) -> None:
    """A run per variant, the parent of its seeds' runs: the mean of each measure over them
    with its 95 % t-interval, and their mean curves, so MLflow charts a variant by itself."""
    client = MlflowClient(tracking_uri=served_study.url)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    parents = {r.data.tags["variant"]: r for r in runs if r.data.tags.get("kind") == "variant"}
    assert set(parents) == set(TINY_PARAMS["variants"])
    for name, parent in parents.items():
        seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.info.run_name for r in seeds) == [
            f"{name}-seed{s}" for s in TINY_PARAMS["train"]["seeds"]
        ]
        gaps = np.array([r.data.metrics["loss_gap_last"] for r in seeds])
        half = stats.t.ppf(0.975, len(gaps) - 1) * gaps.std(ddof=1) / np.sqrt(len(gaps))
        numbers = parent.data.metrics
        assert numbers["loss_gap_last"] == pytest.approx(gaps.mean())
        assert numbers["loss_gap_last_low"] == pytest.approx(gaps.mean() - half)
        assert numbers["loss_gap_last_high"] == pytest.approx(gaps.mean() + half)
        assert numbers["n_seeds"] == len(seeds)
        assert parent.data.tags[ui_view.COLOR_TAG] == seeds[0].data.tags[ui_view.COLOR_TAG]
        curves = [
            {m.step: m.value for m in client.get_metric_history(r.info.run_id, "val_loss")}
            for r in [parent, *seeds]
        ]
        epochs = list(range(1, TINY_PARAMS["train"]["epochs"] + 1))
        assert sorted(curves[0]) == epochs
        for epoch in epochs:
            assert curves[0][epoch] == pytest.approx(np.mean([c[epoch] for c in curves[1:]]))


def test_the_study_view_groups_the_training_runs_by_variant(
    served_study: ServedStudy, tmp_path: Path
) -> None:
    """The address the study prints opens its training runs grouped by variant, with the
    val_loss and loss_gap charts; the runs table lists every run. In a real headless browser."""
    tracking_server, printed = served_study.url, served_study.stdout
    api = f"{tracking_server}/api/2.0/mlflow"
    exp = get_json(f"{api}/experiments/get-by-name?experiment_name={EXPERIMENT}")["experiment"]
    view = f"{tracking_server}/#/experiments/{exp['experiment_id']}/runs?viewStateShareKey="
    assert view in printed, printed  # the address it prints is the view's
    address = printed[printed.index(view) :].split()[0]
    variants = list(TINY_PARAMS["variants"])
    with Browser(tmp_path / "profile") as browser:
        # A first visit opens MLflow's assistant panel over a third of the page: the UI
        # remembers that it did, so a browser that has been here before does not see it.
        tab = browser.open(f"{tracking_server}/health")
        browser.evaluate(tab, f"localStorage.setItem('{ASSISTANT_SHOWN}', 'true')")
        browser.navigate(tab, f"{tracking_server}/#/experiments/{exp['experiment_id']}/runs")
        # A row per variant (its seeds folded under it) and the report's.
        names = [*TINY_PARAMS["variants"], "report"]
        text = browser.text_once(tab, names)
        for name in names:
            assert name in text.splitlines(), f"{name} not a run on the experiment page"
        assert "10 matching runs" in text, "3 variants' runs, their 6 seeds' and the report's"

        browser.navigate(tab, address)
        groups = [f"Group: {name}" for name in variants]
        text = browser.text_once(tab, [*groups, "val_loss", "loss_gap", ui_view.NAME])
        # The name of the open view on the *Views* menu: the UI took the tag for a saved view.
        for wanted in [*groups, "val_loss", "loss_gap", "Group by: variant", ui_view.NAME]:
            assert wanted in text, f"{wanted!r} not in the study's view"
        assert "report" not in text.split(), "the view shows training runs only"
        time.sleep(2)  # the charts' last frame
        shot = tmp_path / "study_view.png"
        browser.screenshot(tab, shot)
    assert shot.stat().st_size > 10_000


def test_mlflow_run_main_groups_the_study_under_one_parent(tiny_repo: Path, run_in: Runner) -> None:
    run_in(
        "mlflow",
        "run",
        ".",
        "-e",
        "main",
        "--env-manager",
        "local",
        "--experiment-name",
        EXPERIMENT,
    )
    runs = runs_of(tiny_repo)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"

    def children(of: str) -> set[str]:
        return {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == of}

    # Under the launcher, the report and a run per variant; under each variant, its seeds.
    assert children(parent.info.run_id) == {"report"} | set(TINY_PARAMS["variants"])
    for r in runs:
        if r.data.tags.get("kind") == "variant":
            name = r.data.tags["variant"]
            assert children(r.info.run_id) == {
                f"{name}-seed{s}" for s in TINY_PARAMS["train"]["seeds"]
            }
    assert all(r.info.status == "FINISHED" for r in runs)
    # A study under `mlflow run` is a full study: DVC's outputs are written.
    assert (tiny_repo / "reports" / "gap_report.md").is_file()
