"""Servers the tests start: `mlflow server` on a free loopback port (PostgreSQL: postgres.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from .repo import BIN, command_env


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


def job_runner_processes(pid: int) -> list[str]:
    """The command lines of MLflow's GenAI job runner (and its huey consumers) among the
    processes under `pid`: none, where the server was started without it."""
    tree = [" ".join(p.cmdline()) for p in psutil.Process(pid).children(recursive=True)]
    return [c for c in tree if "mlflow.server.jobs" in c or "huey" in c]


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
    # The store's password stays off the command line; MLflow's job runner (GenAI jobs, eight
    # processes) stays off, as scripts/tracking-server has it.
    env = command_env(MLFLOW_BACKEND_STORE_URI=backend, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, seconds, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
