"""Run independent jobs in forked processes, a few at a time, and gather what they return.

Why processes: a study is many small trainings. On a CPU, two small runs side by side with one
thread each finish sooner than the same runs one after another with two threads each (matrix
multiplies this small do not scale across threads; see `make bench`). Why fork: the children
inherit the parent's imports and warmed caches (torch, MLflow), which cost seconds per process.

Fork safety: the parent must not have run a multi-threaded OpenMP region before forking (GNU
OpenMP's thread pool does not survive a fork), so callers keep the parent at one torch thread
and each child sets its own count. A child never returns into the parent's code: it sends one
message and exits.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import torch


class JobFailed(Exception):
    """A child raised an exception the parent cannot rebuild; carries the child's traceback."""


@dataclass(frozen=True)
class WorkerPlan:
    """How many jobs run at once, and the torch threads each one gets."""

    at_once: int
    threads: int


def plan_workers(n_jobs: int, parallel: int, threads: int, cores: int | None = None) -> WorkerPlan:
    """`parallel`: jobs at once (0: all of them); `threads`: per job (0: the cores shared out).

    Depends only on the settings and the total number of jobs, never on how many are left, so
    a resumed stage computes with the same thread count, hence the same floating-point results.
    """
    cores = cores or os.cpu_count() or 1
    at_once = max(1, min(n_jobs, parallel or n_jobs))
    return WorkerPlan(at_once, threads or max(1, cores // at_once))


def _interrupt_once(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: one KeyboardInterrupt, so the job ends its MLflow run KILLED; later
    signals (the parent forwards SIGTERM) must not interrupt that clean-up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _child(job: Callable[[], Any], threads: int, conn: Connection) -> None:
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    torch.set_num_threads(threads)
    try:
        conn.send(("ok", job()))
    except KeyboardInterrupt:
        conn.send(("interrupted", None))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        try:
            conn.send(("error", e))  # the parent re-raises the same exception
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled
            conn.send(("error", JobFailed(traceback.format_exc())))
    finally:
        conn.close()


def run_jobs(jobs: Sequence[Callable[[], Any]], workers: WorkerPlan) -> list[Any]:
    """Each job's return value, in order. The first failure stops the rest (their children get
    SIGTERM and end their MLflow runs KILLED) and is raised here; so is Ctrl-C / SIGTERM."""
    ctx = multiprocessing.get_context("fork")
    results: dict[int, Any] = {}
    running: dict[Connection, tuple[int, Any]] = {}
    pending = list(enumerate(jobs))
    try:
        while pending or running:
            while pending and len(running) < workers.at_once:
                index, job = pending.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(job, workers.threads, send))
                process.start()
                send.close()
                running[receive] = (index, process)
            for conn in wait(list(running)):
                index, process = running.pop(conn)  # type: ignore[index]
                try:
                    status, value = conn.recv()
                except EOFError:  # died without a word (killed, out of memory)
                    process.join()
                    raise JobFailed(f"a worker died with exit code {process.exitcode}") from None
                process.join()
                if status == "interrupted":
                    raise KeyboardInterrupt
                if status == "error":
                    raise value
                results[index] = value
    finally:
        _stop(running)
    return [results[i] for i in range(len(jobs))]


def _stop(running: dict[Connection, tuple[int, Any]]) -> None:
    """SIGTERM the children still running and wait for them to close their runs."""
    for _, process in running.values():
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    for conn, (_, process) in running.items():
        process.join()
        conn.close()
