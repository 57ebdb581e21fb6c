"""End to end: the study's grid on Ray, logging to `mlflow server` on PostgreSQL.

Real components on loopback: a PostgreSQL cluster of this module's own (Debian's programs,
tests/support/postgres.py), `mlflow server` with a database there and served artifacts, a Ray
head started with `ray start --head --block` (2 CPUs; ports, temp dir and token of its own),
and a local Ray instance.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from mlflow import MlflowClient

from tests.support.postgres import Cluster, postgres_cluster, postgres_up
from tests.support.repo import BIN, REPO, TINY_PARAMS, command_env, make_runner, scratch_repo
from tests.support.servers import get_json, mlflow_server

pytestmark = pytest.mark.e2e

PY = sys.executable
# Long enough that four runs of the grid overlap even when Ray starts their workers seconds
# apart (it starts about two at a time here, each a second or two apart; a run of 200 epochs
# took ~9 s): short enough for seconds per run.
GRID_PARAMS = copy.deepcopy(TINY_PARAMS)
GRID_PARAMS["train"]["epochs"] = 300
GRID_PARAMS["variants"] = {"baseline": {}, "l2": {"l2": 0.001}}
GRID_PARAMS["mlflow"]["experiment"] = "grid"
RUN_NAMES = {f"{v}-seed{s}" for v in GRID_PARAMS["variants"] for s in GRID_PARAMS["train"]["seeds"]}
# The grid where a test stops a run it sees open: its worker is hit within one poll (0.2 s) of
# the run's start, and 60 epochs (seconds) leave it mid-run even on a busy machine.
SHORT_GRID = copy.deepcopy(GRID_PARAMS)
SHORT_GRID["train"]["epochs"] = 60
# ... plus a variant whose every run diverges (plain SGD under an absurd L2 penalty).
FAILING_PARAMS = copy.deepcopy(SHORT_GRID)
FAILING_PARAMS["variants"]["unstable"] = {"optimizer": "sgd", "l2": 1.0e12}
FAILING_PARAMS["train"]["parallel"] = 1  # one seed per task: a killed worker takes one run
# A run's weights/: the state dict, the architecture, and the normalisation its inputs need.
WEIGHT_FILES = {"model.safetensors", "architecture.json", "normalization.safetensors"}
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
# The grid with one round that adds a third seed to what is undecided: on Ray too. At α = 1e-6
# no interval on 2 or 3 seeds can decide a verdict, so the round surely runs.
ROUNDS_GRID = copy.deepcopy(GRID_PARAMS)
ROUNDS_GRID["rounds"] = {"max": 3, "step": 1}
ROUNDS_GRID["report"] = {"baseline": "baseline", "alpha": 1e-6}


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this module's own, stopped and removed afterwards."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def postgres_server(postgres: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free loopback port: PostgreSQL store, artifacts it serves."""
    artifacts = tmp_path_factory.mktemp("served-artifacts")
    # The first start migrates the schema: more time.
    with mlflow_server(postgres.uri, artifacts, seconds=180) as url:
        yield url


@dataclass(frozen=True)
class RayHead:
    """A Ray head of this module's own: its GCS address, and the environment a driver needs
    to join it (RAY_ENV and the head's token)."""

    address: str
    env: dict[str, str]


# Every port `ray start --head` would otherwise take at a fixed default (6379, 8265, 52365,
# 10001) or choose itself: each gets a free one, so the head cannot collide with another
# Ray instance on the machine.
HEAD_PORT_FLAGS = (
    "--port",  # the GCS
    "--dashboard-port",  # `--include-dashboard false` still starts a minimal dashboard
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--node-manager-port",
    "--object-manager-port",
    "--runtime-env-agent-port",
    # Ray starts its client server (at 10001 by default) only where ray[client] (grpcio)
    # is installed, and refuses the flag where it is not.
    *(["--ray-client-server-port"] if importlib.util.find_spec("grpc") else []),
)


def free_ports(count: int) -> list[int]:
    """`count` different ports, free on every interface (held open together while chosen,
    so none comes twice)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """`ray start --head --block` with 2 CPUs, in a session of its own, with its own ports,
    temp dir and token; stopped by signalling its process group, never by `ray stop`
    (which stops every Ray instance on the machine)."""
    ports = dict(zip(HEAD_PORT_FLAGS, free_ports(len(HEAD_PORT_FLAGS)), strict=True))
    # In /tmp, not pytest's tmp_path: Ray puts Unix sockets under it, and their paths must
    # stay under 108 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-head-", dir="/tmp"))
    env = {**RAY_ENV, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # Without draining on SIGTERM: the GCS gets the same SIGTERM, and the head's drain request
    # to it would wait out its 30 s timeout.
    head_env = {**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        *(str(arg) for flag, port in ports.items() for arg in (flag, port)),
        # 0 and 0: each worker binds a port the kernel picks, not one of 10002-19999.
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",
        "--temp-dir",
        str(temp_dir),
        "--num-cpus",
        "2",
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
        "--log-style",
        "record",
    ]
    output = temp_dir / "ray-start.out"
    with output.open("wb") as out:
        head = subprocess.Popen(
            command,
            env=command_env(**head_env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"127.0.0.1:{ports['--port']}"
    ready = False
    try:
        wait_for_head(head, address, env, command, output, temp_dir, seconds=240)
        ready = True
        yield RayHead(address, env)
    finally:
        stop_session(head)
        if ready:  # else the failure names the directory, for its logs
            shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_head(
    head: subprocess.Popen,
    address: str,
    env: dict[str, str],
    command: list[str],
    output: Path,
    temp_dir: Path,
    seconds: float,
) -> None:
    """Until the GCS accepts connections and `ray status` (authenticated) lists the head's
    node; fail with Ray's output and logs if the head exits or is not ready in time."""
    deadline = time.monotonic() + seconds
    host, port = address.rsplit(":", 1)
    status = None
    while True:
        if head.poll() is not None:
            why = f"`ray start --head` exited {head.returncode}"
            break
        if time.monotonic() > deadline:
            why = f"the Ray head was not ready at {address} after {seconds:.0f} s"
            break
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            time.sleep(0.5)
            continue
        try:
            status = subprocess.run(
                [str(BIN / "ray"), "status", "--address", address],
                env=command_env(**env),
                capture_output=True,
                text=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            continue
        if status.returncode == 0 and " node_" in status.stdout:  # under "Active:"
            return
        time.sleep(1)
    last_status = ""
    if status is not None:
        last_status = (
            f"\n--- `ray status`, exit {status.returncode}\n{status.stdout}{status.stderr}"
        )
    pytest.fail(
        f"{why}\n$ {shlex.join(command)}\n--- its output\n"
        f"{output.read_text(errors='replace')}{last_status}\n"
        f"--- the ends of its logs under {temp_dir}\n{log_tails(temp_dir)}",
        pytrace=False,
    )


def log_tails(temp_dir: Path, lines: int = 25) -> str:
    """The last lines of every log file of the Ray sessions under `temp_dir`."""
    parts = []
    for log in sorted(temp_dir.glob("session_*/logs/*")):
        if log.parent.parent.is_symlink() or not log.is_file() or not log.stat().st_size:
            continue  # session_latest is a link to the session itself
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"-- {log.relative_to(temp_dir)}\n" + "\n".join(tail))
    return "\n".join(parts) or "(none)"


def stop_session(leader: subprocess.Popen, grace: float = 60) -> None:
    """Stop the session `leader` leads: SIGTERM to its process group, then, once the session
    is empty or after `grace` seconds, SIGKILL to whatever is left in it (Ray's workers have
    process groups of their own in the session). Returns once the leader is reaped."""
    with suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_members(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_members(leader.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    leader.wait(timeout=60)


def session_members(session: int) -> list[int]:
    """The live (not zombie) processes of a session, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def server_runs(url: str, experiment: str) -> tuple[str, list[dict]]:
    api = f"{url}/api/2.0/mlflow"
    exp = get_json(f"{api}/experiments/get-by-name?experiment_name={experiment}")["experiment"]
    found = get_json(
        f"{api}/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000}
    )["runs"]
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


# Runs that start at one moment and log one dataset, as a Ray grid's workers do: each of
# `LOGGERS` threads waits at a barrier, then logs the same new dataset to a run of its own.
RACING_LOGGERS = """
import sys, threading, uuid
from concurrent.futures import ThreadPoolExecutor
from mlflow import MlflowClient
from pipeline.tracking import store

client = MlflowClient()
experiment = client.create_experiment(f"race-{uuid.uuid4().hex}")
loggers = int(sys.argv[1])
for trial in range(int(sys.argv[2])):
    dataset = {"name": "digits", "digest": uuid.uuid4().hex[:8], "source_type": "local",
               "source": '{"uri": "data/prepared"}'}
    runs = [client.create_run(experiment).info.run_id for _ in range(loggers)]
    barrier = threading.Barrier(loggers)

    def log(run_id):
        barrier.wait()
        store.log_dataset(run_id, dataset)

    with ThreadPoolExecutor(loggers) as pool:
        list(pool.map(log, runs))
    for run_id in runs:
        [logged] = client.get_run(run_id).inputs.dataset_inputs
        assert logged.dataset.digest == dataset["digest"], logged
print("all logged")
"""


def test_runs_that_start_together_each_log_the_dataset(postgres_server: str) -> None:
    """The store inserts a dataset the first time a run logs it; runs that log it at one
    moment race for that insert, and each must still end with its input logged."""
    done = subprocess.run(
        [PY, "-c", RACING_LOGGERS, "8", "6"],
        cwd=REPO,
        env=command_env(MLFLOW_TRACKING_URI=postgres_server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "all logged" in done.stdout, done.stderr[-3000:]


def test_ray_cluster_runs_the_grid_into_the_shared_server(
    tmp_path: Path, postgres_server: str, ray_head: RayHead
) -> None:
    repo = scratch_repo(tmp_path / "repo", ROUNDS_GRID)
    run = make_runner(repo)
    done = run(
        PY,
        "-m",
        "pipeline",
        "study",
        "--executor",
        "ray",
        "--address",
        ray_head.address,
        "--cpus-per-run",
        "0.5",
        MLFLOW_TRACKING_URI=postgres_server,
        **ray_head.env,
    )
    assert "[4/4]" in done.stderr
    assert not (repo / "mlflow.db").exists() and not (repo / "mlruns").exists()

    api = f"{postgres_server}/api/2.0/mlflow"
    experiment_id, found = server_runs(postgres_server, "grid")
    trained = [r for r in found if tags_of(r).get("kind") == "train"]
    names = [r["info"]["run_name"] for r in trained]
    rounds = json.loads((repo / "rounds" / "rounds.json").read_text())
    seeds = {name: outcome["seeds"] for name, outcome in rounds["variants"].items()}
    expected = {f"{v}-seed{s}" for v, n in seeds.items() for s in range(n)}
    assert sorted(names) == sorted(expected), "every run once: none lost, none duplicated"
    # Undecided on 2 seeds (see ROUNDS_GRID): the round trained a third of each, as Ray tasks.
    assert seeds == {"baseline": 3, "l2": 3}
    added = [r for r in trained if tags_of(r).get("round") == "1"]
    assert sorted(r["info"]["run_name"] for r in added) == ["baseline-seed2", "l2-seed2"]
    epochs = GRID_PARAMS["train"]["epochs"]
    for r in trained:
        info = r["info"]
        assert info["status"] == "FINISHED", info
        tags = tags_of(r)
        assert tags["executor"] == "ray" and tags["worker_pid"] and tags["ray_node"]
        for key in ("train_loss", "val_loss", "loss_gap"):
            history = get_json(
                f"{api}/metrics/get-history?run_id={info['run_id']}"
                f"&metric_key={key}&max_results=10000"
            )["metrics"]
            assert sorted(m["step"] for m in history) == list(range(1, epochs + 1)), key
        files = get_json(f"{api}/artifacts/list?run_id={info['run_id']}&path=weights")["files"]
        assert {Path(f["path"]).name for f in files} == WEIGHT_FILES
    models = get_json(
        f"{api}/logged-models/search", {"experiment_ids": [experiment_id], "max_results": 100}
    )["models"]
    by_run = sorted(m["info"]["source_run_id"] for m in models)
    assert by_run == sorted(r["info"]["run_id"] for r in trained), "one model per run"
    intervals = [(int(r["info"]["start_time"]), int(r["info"]["end_time"])) for r in trained]
    assert most_at_once(intervals) >= 4, f"the runs did not overlap: {intervals}"

    # The driver writes the outputs as in-process training does (tests/e2e/test_networks.py
    # compares the two, bit for bit).
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    assert summary["missing_runs"] == []
    for seed in GRID_PARAMS["train"]["seeds"]:
        assert (repo / "models" / "l2" / f"seed{seed}" / "model.safetensors").is_file()


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
    assert "unstable-seed0: FAILED: training diverged at epoch 1" in stderr
    assert "3 run(s) did not finish:" in error_line(stderr)

    report = (repo / "reports" / "gap_report.md").read_text()
    assert "## Missing runs" in report and f"**{victim}**: its worker process died" in report
    assert "**unstable-seed1**: training diverged at epoch" in report
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
    assert len(steps) < FAILING_PARAMS["train"]["epochs"], "killed mid-run, not after its end"


def test_sigterm_to_the_driver_ends_every_run_and_writes_nothing(tmp_path: Path) -> None:
    """SIGTERM mid-grid, as a scheduler sends it: the driver cancels its tasks and ends the
    runs they had open KILLED; no output is written, and the exit code says SIGTERM."""
    repo = scratch_repo(tmp_path / "repo", SHORT_GRID)
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


def test_a_worker_lost_in_a_round_is_named_in_the_report(tmp_path: Path) -> None:
    """A local Ray instance: the worker training a seed the round added is SIGKILLed, and a
    variant diverges on every seed of the first round. The study ends 1 naming the three
    runs, the report and rounds/rounds.json list them, the killed one's run is FAILED."""
    params = copy.deepcopy(ROUNDS_GRID)
    params["train"]["epochs"] = SHORT_GRID["train"]["epochs"]
    params["variants"]["unstable"] = FAILING_PARAMS["variants"]["unstable"]
    params["train"]["parallel"] = 1  # one seed per task: the killed worker takes one run
    repo = scratch_repo(tmp_path / "repo", params)
    victim = "l2-seed2"  # seeds 0 and 1 are the train stage's; the round adds seed 2
    returncode, stderr = study_hit_mid_run(
        repo, victim, lambda worker, driver: os.kill(worker, signal.SIGKILL), timeout=300
    )
    assert returncode == 1, stderr
    assert f"{victim}: FAILED: its worker process died" in stderr
    assert "3 run(s) did not finish:" in error_line(stderr)
    report = (repo / "reports" / "gap_report.md").read_text()
    assert "## Missing runs" in report and f"**{victim}**: its worker process died" in report
    assert "**unstable-seed0**: training diverged at epoch" in report
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    assert sorted(m["run_name"] for m in summary["missing_runs"]) == [
        victim,
        "unstable-seed0",
        "unstable-seed1",
    ]
    assert summary["variants"]["l2"]["n_seeds"] == 2  # its two finished seeds
    assert "unstable" not in summary["variants"]
    rounds = json.loads((repo / "rounds" / "rounds.json").read_text())
    assert [(m["run_name"], m["diverged"]) for m in rounds["missing_runs"]] == [(victim, False)]
    assert rounds["variants"]["unstable"]["seeds"] == 2, "no seed is added to a diverged variant"
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("grid").experiment_id
    [lost] = client.search_runs([experiment], f"attributes.run_name = '{victim}'")
    assert lost.info.status == "FAILED" and lost.data.tags["failure"] == "worker lost"


def study_hit_mid_run(
    repo: Path,
    run_name: str,
    hit: Callable[[int, subprocess.Popen], None],
    timeout: float,
) -> tuple[int, str]:
    """Run the study on a local Ray instance; once `run_name` is training, `hit(worker pid,
    driver process)`; return the driver's exit code and stderr once it has ended."""
    # One CPU a run: the local instance's two workers train every task, where half a CPU would
    # start two more, each importing torch and MLflow (~3.5 s of CPU) for nothing these
    # tests check (the grid test checks that fractional runs overlap).
    process = subprocess.Popen(
        [PY, "-m", "pipeline", "study", "--executor", "ray", "--cpus-per-run", "1"],
        cwd=repo,
        env=command_env(**RAY_ENV),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
        (
            ["--executor", "ray", "--address", "127.0.0.1:1"],
            {},
            "joining the Ray cluster at 127.0.0.1:1 needs a tracking server all its workers reach",
        ),
        (
            ["--executor", "ray"],
            {"RAY_ADDRESS": "127.0.0.1:1"},
            "joining the Ray cluster at 127.0.0.1:1 needs a tracking server all its workers reach",
        ),
        (
            ["--executor", "ray", "--address", "127.0.0.1:1"],
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"},
            "no Ray cluster answers at 127.0.0.1:1: Connection refused",
        ),
        (["--cpus-per-run", "2"], {}, "--cpus-per-run only apply with --executor ray"),
        (["--executor", "ray", "--cpus-per-run", "0"], {}, "Invalid value for '--cpus-per-run'"),
        # Asks the local Ray instance for more than it has: refused once connected, before
        # the data is prepared (the tasks would wait forever).
        (
            ["--executor", "ray", "--cpus-per-run", "64"],
            RAY_ENV,
            "--cpus-per-run 64: no node of the Ray cluster has that many CPUs",
        ),
    ],
)
def test_bad_executor_settings_fail_before_anything_runs(
    tmp_path: Path, flags: list[str], env: dict[str, str], message: str
) -> None:
    repo = scratch_repo(tmp_path / "repo", GRID_PARAMS)
    done = make_runner(repo)(PY, "-m", "pipeline", "study", *flags, check=False, **env)
    assert done.returncode == 2, done.stderr
    assert message in error_line(done.stderr)
    assert not (repo / "data" / "prepared").exists() and not (repo / "mlflow.db").exists()


def test_the_callers_ray_settings_do_not_reach_the_commands_tests_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A RAY_ADDRESS of the caller's would send the tests' local Ray instances to its cluster.
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "the-callers")
    env = command_env(RAY_AUTH_MODE="token")
    assert "RAY_ADDRESS" not in env and "RAY_AUTH_TOKEN" not in env
    assert env["RAY_AUTH_MODE"] == "token"  # what a test passes itself still goes through


def test_postgres_up_quotes_names_and_password_and_grants_no_more(postgres: Cluster) -> None:
    """Names and a password full of quotes, spaces and URI characters: the role and database
    are created as named, the printed URI is percent-encoded and connects, and the role may
    not create databases. On the module's cluster, which the script sets up as its superuser."""
    name = f"o'brien; DROP ROLE x {uuid.uuid4().hex[:6]}"
    database = f"it's {name}"
    password = "p@ss:w/o'rd%"
    settings = dict(MLFLOW_DB=database, MLFLOW_DB_USER=name, MLFLOW_DB_PASSWORD=password)
    uri = postgres_up(**postgres.env, **settings)
    assert f"@127.0.0.1:{postgres.port}/" in uri
    assert " " not in uri and "'" not in uri
    engine = sqlalchemy.create_engine(uri, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            who = connection.execute(sqlalchemy.text("SELECT current_user, current_database()"))
            assert who.one() == (name, database)
            may_create = connection.execute(
                sqlalchemy.text("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user")
            )
            assert may_create.scalar() is False
    finally:
        engine.dispose()
