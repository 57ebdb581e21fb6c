"""Shared fixtures: a scratch copy of the repository with tiny settings, and a runner for
the real `python -m pipeline`, `dvc` and `mlflow` commands inside it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pipeline.core.techniques import SWEPT

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's python, dvc and mlflow

# Small enough for seconds per stage on 2 cores, large enough to overfit: sklearn's digits
# (1,797 8x8 images, shipped with scikit-learn, no download).
TINY_PARAMS = {
    "data": {"dataset": "digits", "val_fraction": 0.25, "test_fraction": 0.25, "split_seed": 0},
    "model": {"hidden_sizes": [32]},
    "train": {
        "epochs": 4,
        "batch_size": 64,
        "lr": 0.003,
        "seeds": [0, 1],
        "device": "cpu",
        "threads": 1,
    },
    "variants": {
        "baseline": {"description": "nothing"},
        "dropout": {"dropout": 0.5},
        "l2": {"l2": 0.001},
    },
    "mlflow": {"experiment": "tiny-study", "log_model": True},
    "report": {"baseline": "baseline"},
    "rounds": None,  # the seeds above, no more (dvc.yaml's rounds stage reads the key)
    # sweep-stages/dvc.yaml reads every technique's list; empty: no strength paths in these tests
    "sweep": {technique: [] for technique in SWEPT},
}


def command_env(**extra: str) -> dict[str, str]:
    # Nothing of the caller's MLflow, DVC or Ray settings: RAY_ADDRESS would send a test's
    # local Ray instance to the caller's cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "RAY_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
        DVC_NO_ANALYTICS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


Runner = Callable[..., subprocess.CompletedProcess]


def make_runner(cwd: Path) -> Runner:
    def run(*args: str, check: bool = True, timeout: float = 600, **env: str):
        result = subprocess.run(
            list(args),
            cwd=cwd,
            env=command_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}"
                f"\n--- stderr\n{result.stderr}"
            )
        return result

    return run


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.splitlines() if (REPO / f).is_file()]


def scratch_repo(dest: Path, params: dict) -> Path:
    """Copy the repository's tracked files (without its outputs), write `params`, commit."""
    skip = ("reports/", "metrics/", "sweeps/", "dvc.lock")
    for name in tracked_files():
        if name.startswith(skip):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = make_runner(dest)
    run("git", "init", "-q", "-b", "main")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "scratch copy")
    return dest


def postgres_up(**env: str) -> str:
    """scripts/postgres-up with `env`: the URI it prints."""
    done = subprocess.run(
        [str(REPO / "scripts" / "postgres-up")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, payload: dict | None = None) -> dict:
    """GET `url` (POST `payload` as JSON) against a REST API; the decoded answer."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_health(
    url: str, process: subprocess.Popen, seconds: float = 90, log: Path | None = None
) -> None:
    """Poll an MLflow server's /health until it answers; fail if it dies or never does,
    with the tail of its `log`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                tail = "\n".join(log.read_text().splitlines()[-30:]) if log else ""
                raise RuntimeError(f"no MLflow server came up at {url}\n{tail}") from None
            time.sleep(0.5)


@contextmanager
def mlflow_server(backend: str, artifacts: Path, seconds: float = 90) -> Iterator[str]:
    """`mlflow server` on a free loopback port, with `backend` as its store and serving the
    artifacts it keeps in `artifacts`: its URL once /health answers. Its output goes to a log
    beside the artifacts, which a failure to start shows."""
    port = free_port()
    log = artifacts.with_name(f"{artifacts.name}-server.log")
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--serve-artifacts", "--artifacts-destination", str(artifacts), "--workers", "1"]
    env = command_env(MLFLOW_BACKEND_STORE_URI=backend)  # its password stays off the command line
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, seconds, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return scratch_repo(tmp_path / "repo", TINY_PARAMS)


@pytest.fixture
def run_in(tiny_repo: Path) -> Runner:
    return make_runner(tiny_repo)
