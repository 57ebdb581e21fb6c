"""Independent jobs in forked processes, a few at a time, and what they return.

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
import pickle
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from ..signals import become_worker


class JobFailed(Exception):
    """A child raised an exception the parent cannot rebuild; carries the child's traceback."""


@dataclass(frozen=True)
class WorkerPlan:
    """How many jobs run at once, and the torch threads each one gets."""

    at_once: int
    threads: int


def usable_cores() -> int:
    """The cores this process may run on (CPU affinity, as set by taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(n_jobs: int, parallel: int, threads: int, cores: int | None = None) -> WorkerPlan:
    """`parallel`: jobs at once (0: all of them); `threads`: per job (0: the cores shared out).

    Callers pass the number of jobs the settings call for (a stage's seeds), not how many are
    left to run, so a resumed stage or a single seed computes with the same thread count as
    the whole stage, hence the same floating-point results.
    """
    cores = cores or usable_cores()
    at_once = max(1, min(n_jobs, parallel or n_jobs))
    return WorkerPlan(at_once, threads or max(1, cores // at_once))


def _child(job: Callable[[], Any], threads: int, conn: Connection, parent: int) -> None:
    become_worker(parent)
    torch.set_num_threads(threads)
    try:
        conn.send(("ok", job()))
    except KeyboardInterrupt:
        conn.send(("interrupted", None))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        conn.send(("error", _portable(e)))
    finally:
        conn.close()


def _portable(error: BaseException) -> BaseException:
    """The exception itself when it survives pickling intact (the parent re-raises it, e.g. a
    TrainingDiverged); otherwise a JobFailed carrying the worker's traceback."""
    try:
        copy = pickle.loads(pickle.dumps(error))
        if type(copy) is type(error) and str(copy) == str(error):
            return error
    except Exception:  # noqa: BLE001, S110 - any failure means: not portable
        pass
    return JobFailed(f"{type(error).__name__}: {error}\n{traceback.format_exc()}")


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
                process = ctx.Process(target=_child, args=(job, workers.threads, send, os.getpid()))
                running[receive] = (index, process)  # before start: a signal now still stops it
                process.start()
                send.close()
            for conn in wait(list(running)):
                index, process = running.pop(conn)  # type: ignore[index]
                try:
                    status, value = conn.recv()
                except Exception as e:  # died without a word (killed, out of memory), or garbled
                    process.join()
                    raise JobFailed(
                        f"a worker died with exit code {process.exitcode} ({type(e).__name__})"
                    ) from None
                process.join()
                if status == "interrupted":
                    raise KeyboardInterrupt
                if status == "error":
                    raise value
                results[index] = value
    finally:
        _stop(running)
    return [results[i] for i in range(len(jobs))]


def _stop(running: dict[Connection, tuple[int, Any]], grace: float = 120.0) -> None:
    """SIGTERM the children still running and give them `grace` seconds to close their runs;
    SIGKILL any that do not, so a stuck clean-up cannot hang the stage."""
    started = [process for _, process in running.values() if process.pid is not None]
    for process in started:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in started:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    for conn in running:
        conn.close()
