"""Jobs in forked workers: the layout rule, results in order, failures and interrupts."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from pipeline.errors import TrainingDiverged
from pipeline.side_by_side import JobFailed, WorkerPlan, plan_workers, run_jobs


@pytest.mark.parametrize(
    ("n_jobs", "parallel", "threads", "cores", "expected"),
    [
        (3, 0, 0, 2, WorkerPlan(3, 1)),  # the default study on this machine: all seeds at once
        (3, 0, 0, 16, WorkerPlan(3, 5)),  # cores shared out
        (3, 1, 0, 8, WorkerPlan(1, 8)),  # one after another, every core
        (5, 2, 0, 8, WorkerPlan(2, 4)),
        (2, 4, 0, 8, WorkerPlan(2, 4)),  # never more at once than there are jobs
        (3, 0, 2, 2, WorkerPlan(3, 2)),  # an explicit thread count wins
        (1, 0, 0, 2, WorkerPlan(1, 2)),
    ],
)
def test_plan(n_jobs, parallel, threads, cores, expected) -> None:
    assert plan_workers(n_jobs, parallel, threads, cores) == expected


def _pid_and_threads(tag: str) -> tuple[str, int, int]:
    return tag, os.getpid(), torch.get_num_threads()


def test_results_come_back_in_job_order_from_other_processes() -> None:
    jobs = [lambda t=t: _pid_and_threads(t) for t in "abcde"]
    results = run_jobs(jobs, WorkerPlan(at_once=2, threads=1))
    assert [r[0] for r in results] == list("abcde")
    assert all(pid != os.getpid() for _, pid, _ in results)
    assert {threads for _, _, threads in results} == {1}


def _diverge() -> None:
    raise TrainingDiverged(4, "val_loss not finite")


def test_a_failing_job_raises_its_own_exception_in_the_parent() -> None:
    with pytest.raises(TrainingDiverged) as err:
        run_jobs([lambda: 1, _diverge], WorkerPlan(2, 1))
    assert (err.value.epoch, err.value.reason) == (4, "val_loss not finite")


def test_a_worker_that_dies_is_reported() -> None:
    with pytest.raises(JobFailed, match="exit code"):
        run_jobs([lambda: os._exit(3)], WorkerPlan(1, 1))


def test_sigterm_stops_every_worker_and_each_cleans_up(tmp_path) -> None:
    """The parent's SIGTERM handler raises; the workers still running get SIGTERM and run
    their clean-up (here: write a file) before the parent re-raises."""

    def job(i: int) -> None:
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            (tmp_path / f"cleaned-{i}").write_text("ok")
            raise

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, on_term)
    signal.setitimer(signal.ITIMER_REAL, 3.0)  # every worker has started by then
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_jobs([lambda i=i: job(i) for i in range(3)], WorkerPlan(3, 1))
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cleaned-0", "cleaned-1", "cleaned-2"]


class _Unrebuildable(Exception):
    def __init__(self, a: int, b: int):  # pickles, but cannot be rebuilt from its args
        super().__init__(f"{a}/{b}")


def _raise_unrebuildable() -> None:
    raise _Unrebuildable(1, 2)


def test_an_exception_that_cannot_cross_comes_back_as_jobfailed_with_its_traceback() -> None:
    with pytest.raises(JobFailed) as err:
        run_jobs([_raise_unrebuildable], WorkerPlan(1, 1))
    assert "_Unrebuildable: 1/2" in str(err.value)
    assert "_raise_unrebuildable" in str(err.value)  # the worker's traceback
