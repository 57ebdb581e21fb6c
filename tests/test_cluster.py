"""End to end: the study's grid on Ray, logging to `mlflow server` on PostgreSQL.

Real components on loopback: Debian's PostgreSQL (set up by scripts/postgres-up, which
.ci/run also calls), `mlflow server` with a database of this module's own and served
artifacts, a Ray head started with `ray start --head` (2 CPUs), and a local Ray instance.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .conftest import (
    BIN,
    REPO,
    TINY_PARAMS,
    command_env,
    free_port,
    get_json,
    make_runner,
    scratch_repo,
    wait_for_health,
)

pytestmark = pytest.mark.e2e

PY = sys.executable
# Long enough that four runs of the grid overlap even when Ray starts their workers seconds
# apart (it starts about two at a time here, each a second or two apart; a run of 200 epochs
# took ~9 s): short enough for seconds per run.
GRID_PARAMS = copy.deepcopy(TINY_PARAMS)
GRID_PARAMS["train"]["epochs"] = 300
GRID_PARAMS["variants"] = {"baseline": {"description": "nothing"}, "l2": {"l2": 0.001}}
GRID_PARAMS["mlflow"]["experiment"] = "grid"
RUN_NAMES = {f"{v}-seed{s}" for v in GRID_PARAMS["variants"] for s in GRID_PARAMS["train"]["seeds"]}
# The same grid plus a variant whose every run diverges (plain SGD under an absurd L2 penalty).
FAILING_PARAMS = copy.deepcopy(GRID_PARAMS)
FAILING_PARAMS["variants"]["unstable"] = {"optimizer": "sgd", "l2": 1.0e12}
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards: its SQLAlchemy URI."""
    done = subprocess.run([str(REPO / "scripts" / "postgres-up")], capture_output=True,
                          text=True, check=True)  # fmt: skip
    project_uri = done.stdout.strip().splitlines()[-1]
    name = f"test_{uuid.uuid4().hex[:12]}"
    psql = ["psql", project_uri, "-v", "ON_ERROR_STOP=1", "-qc"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True)
    try:
        yield project_uri.rsplit("/", 1)[0] + f"/{name}"
    finally:
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)


@pytest.fixture(scope="module")
def postgres_server(
    postgres_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow server` on a free loopback port: PostgreSQL store, artifacts it serves."""
    port = free_port()
    artifacts = tmp_path_factory.mktemp("served-artifacts")
    process = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", postgres_database, "--serve-artifacts",
         "--artifacts-destination", str(artifacts), "--workers", "1"],
        env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, seconds=180)  # the first start migrates the schema
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """`ray start --head` with 2 CPUs; its GCS address."""
    port = free_port()
    env = command_env(**RAY_ENV)
    subprocess.run(
        [str(BIN / "ray"), "start", "--head", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True,
                       timeout=120)  # fmt: skip


def server_runs(url: str, experiment: str) -> tuple[str, list[dict]]:
    api = f"{url}/api/2.0/mlflow"
    exp = get_json(f"{api}/experiments/get-by-name?experiment_name={experiment}")["experiment"]
    found = get_json(f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                            "max_results": 1000})["runs"]  # fmt: skip
    return exp["experiment_id"], found


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    """The largest number of (start, end) intervals that hold one instant."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
        key=lambda ev: (ev[0], ev[1]),
    )  # an end before a start at the same time
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_ray_cluster_runs_the_grid_into_the_shared_server(
    tmp_path: Path, postgres_server: str, ray_head: str
) -> None:
    repo = scratch_repo(tmp_path / "repo", GRID_PARAMS)
    run = make_runner(repo)
    done = run(PY, "-m", "pipeline", "study", "--executor", "ray", "--address", ray_head,
               "--cpus-per-run", "0.5", MLFLOW_TRACKING_URI=postgres_server, **RAY_ENV)  # fmt: skip
    assert "[4/4]" in done.stderr
    assert not (repo / "mlflow.db").exists() and not (repo / "mlruns").exists()

    api = f"{postgres_server}/api/2.0/mlflow"
    experiment_id, found = server_runs(postgres_server, "grid")
    trained = [r for r in found if tags_of(r).get("kind") == "train"]
    names = [r["info"]["run_name"] for r in trained]
    assert sorted(names) == sorted(RUN_NAMES), "every run once: none lost, none duplicated"
    epochs = GRID_PARAMS["train"]["epochs"]
    for r in trained:
        info = r["info"]
        assert info["status"] == "FINISHED", info
        tags = tags_of(r)
        assert tags["executor"] == "ray" and tags["worker_pid"] and tags["ray_node"]
        for key in ("train_loss", "val_loss", "loss_gap"):
            history = get_json(f"{api}/metrics/get-history?run_id={info['run_id']}"
                               f"&metric_key={key}&max_results=10000")["metrics"]  # fmt: skip
            assert sorted(m["step"] for m in history) == list(range(1, epochs + 1)), key
        files = get_json(f"{api}/artifacts/list?run_id={info['run_id']}&path=weights")["files"]
        assert {Path(f["path"]).name for f in files} == {"model.safetensors", "architecture.json"}
    models = get_json(f"{api}/logged-models/search", {"experiment_ids": [experiment_id],
                                                      "max_results": 100})["models"]  # fmt: skip
    by_run = sorted(m["info"]["source_run_id"] for m in models)
    assert by_run == sorted(r["info"]["run_id"] for r in trained), "one model per run"
    intervals = [(int(r["info"]["start_time"]), int(r["info"]["end_time"])) for r in trained]
    assert most_at_once(intervals) >= 4, f"the runs did not overlap: {intervals}"

    # The same report as in-process training: with one thread per run, bit for bit the same.
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    assert summary["missing_runs"] == []
    on_ray = {v: json.loads((repo / "metrics" / v / "runs.json").read_text())
              for v in GRID_PARAMS["variants"]}  # fmt: skip
    run(PY, "-m", "pipeline", "study")  # in-process, into a local SQLite store
    for variant, runs in on_ray.items():
        local = json.loads((repo / "metrics" / variant / "runs.json").read_text())
        assert [results(r) for r in runs] == [results(r) for r in local], variant
    for seed in GRID_PARAMS["train"]["seeds"]:
        assert (repo / "models" / "l2" / f"seed{seed}" / "model.safetensors").is_file()


def results(run: dict) -> dict:
    """A run's summary without its timing."""
    return {k: v for k, v in run["summary"].items() if k != "train_seconds"}


def test_failed_tasks_are_named_and_the_others_finish(tmp_path: Path) -> None:
    """A local Ray instance and the default SQLite store: one task's worker is SIGKILLed
    mid-run, and both runs of another variant diverge."""
    repo = scratch_repo(tmp_path / "repo", FAILING_PARAMS)
    victim = "l2-seed1"
    returncode, stderr = study_hit_mid_run(
        repo, victim, lambda worker, driver: os.kill(worker, signal.SIGKILL), timeout=300
    )
    assert returncode == 1, stderr
    assert f"{victim}: FAILED: its worker process died" in stderr
    assert "unstable-seed0: FAILED: TrainingDiverged: training diverged at epoch 1" in stderr
    assert "3 run(s) did not finish:" in error_line(stderr)

    report = (repo / "reports" / "gap_report.md").read_text()
    assert "## Missing runs" in report and f"**{victim}**: its worker process died" in report
    assert "**unstable-seed1**: TrainingDiverged" in report
    assert "| unstable |" not in report, "a variant without a finished run has no row"
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    diverged = {m["run_name"]: m["diverged"] for m in summary["missing_runs"]}
    assert diverged == {victim: False, "unstable-seed0": True, "unstable-seed1": True}
    missing = set(diverged)
    assert "unstable" not in summary["variants"]
    assert summary["variants"]["l2"]["n_seeds"] == 1
    assert summary["variants"]["l2"]["vs_baseline"]["best_val_loss"]["n"] == 1
    assert [r["seed"] for r in json.loads((repo / "metrics/l2/runs.json").read_text())] == [0]
    assert not (repo / "models" / "l2" / "seed1").exists()

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("grid").experiment_id
    runs = client.search_runs([experiment], "tags.kind = 'train'")
    status = {r.info.run_name: r.info.status for r in runs}
    assert len(runs) == len(RUN_NAMES) + 2 and set(status) == RUN_NAMES | missing
    assert status.pop("unstable-seed0") == status.pop("unstable-seed1") == "FAILED"
    assert status.pop(victim) == "FAILED", "the dead worker's run must not stay RUNNING"
    assert set(status.values()) == {"FINISHED"}
    killed = next(r for r in runs if r.info.run_name == victim)
    assert killed.data.tags["failure"] == "worker lost"
    steps = client.get_metric_history(killed.info.run_id, "val_loss")
    assert len(steps) < GRID_PARAMS["train"]["epochs"], "killed mid-run, not after its end"


def test_sigterm_to_the_driver_ends_every_run_and_writes_nothing(tmp_path: Path) -> None:
    """SIGTERM mid-grid, as a scheduler sends it: the driver cancels its tasks and ends the
    runs they had open KILLED; no output is written, and the exit code says SIGTERM."""
    repo = scratch_repo(tmp_path / "repo", GRID_PARAMS)
    returncode, stderr = study_hit_mid_run(
        repo, "l2-seed1", lambda worker, driver: driver.send_signal(signal.SIGTERM), timeout=180
    )
    assert returncode == 143, stderr
    assert "interrupted (SIGTERM)" in stderr
    assert not (repo / "metrics").exists() and not (repo / "reports").exists()
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("grid").experiment_id])
    assert runs and {r.info.status for r in runs} <= {"KILLED", "FINISHED"}
    assert "KILLED" in {r.info.status for r in runs}


def study_hit_mid_run(
    repo: Path,
    run_name: str,
    hit: Callable[[int, subprocess.Popen], None],
    timeout: float,
) -> tuple[int, str]:
    """Run the study on a local Ray instance; once `run_name` is training, `hit(worker pid,
    driver process)`; return the driver's exit code and stderr once it has ended."""
    process = subprocess.Popen(
        [PY, "-m", "pipeline", "study", "--executor", "ray", "--cpus-per-run", "0.5"],
        cwd=repo, env=command_env(**RAY_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        hit(wait_for_running(repo, run_name, process), process)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


def error_line(stderr: str) -> str:
    """The one `error:` line a failed command prints (`Error:` from click's own checks); Ray
    or MLflow may log after it."""
    [line] = [line for line in stderr.splitlines() if line.lower().startswith("error:")]
    return line


def wait_for_running(repo: Path, run_name: str, process: subprocess.Popen) -> int:
    """The pid of the Ray worker training `run_name`, once its MLflow run is open. Read from
    the SQLite file directly, read-only: an MLflow client here could race the study's
    creation of the schema."""
    deadline = time.monotonic() + 240
    query = (
        "SELECT tags.value FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
        "WHERE runs.name = ? AND runs.status = 'RUNNING' AND tags.key = 'worker_pid'"
    )
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with sqlite3.connect(f"file:{repo / 'mlflow.db'}?mode=ro", uri=True) as db:
                found = db.execute(query, (run_name,)).fetchone()
        except sqlite3.OperationalError:  # no file or no tables yet, or a write in progress
            found = None
        if found:
            return int(found[0])
        time.sleep(0.2)
    raise AssertionError(f"{run_name} never started")


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--executor", "ray", "--address", "127.0.0.1:1"], {},
         "joining the Ray cluster at 127.0.0.1:1 needs a tracking server all its workers reach"),
        (["--executor", "ray"], {"RAY_ADDRESS": "127.0.0.1:1"},
         "joining the Ray cluster at 127.0.0.1:1 needs a tracking server all its workers reach"),
        (["--executor", "ray", "--address", "127.0.0.1:1"],
         {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"},
         "no Ray cluster answers at 127.0.0.1:1: Connection refused"),
        (["--cpus-per-run", "2"], {}, "--cpus-per-run only apply with --executor ray"),
        (["--executor", "ray", "--cpus-per-run", "0"], {}, "Invalid value for '--cpus-per-run'"),
        # Asks the local Ray instance for more than it has: refused once connected, before
        # the data is prepared (the tasks would wait forever).
        (["--executor", "ray", "--cpus-per-run", "64"], RAY_ENV,
         "--cpus-per-run 64: no node of the Ray cluster has that many CPUs"),
    ],
)  # fmt: skip
def test_bad_executor_settings_fail_before_anything_runs(
    tmp_path: Path, flags: list[str], env: dict[str, str], message: str
) -> None:
    repo = scratch_repo(tmp_path / "repo", GRID_PARAMS)
    done = make_runner(repo)(PY, "-m", "pipeline", "study", *flags, check=False, **env)
    assert done.returncode == 2, done.stderr
    assert message in error_line(done.stderr)
    assert not (repo / "data" / "prepared").exists() and not (repo / "mlflow.db").exists()
