"""Jobs in forked workers: the layout rule, results in order, failures and interrupts."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from pipeline.errors import TrainingDiverged
from pipeline.executors import forked
from pipeline.executors.forked import JobFailed, WorkerPlan, plan_workers, run_jobs


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


def test_sigterm_stops_every_worker_and_each_cleans_up(tmp_path, monkeypatch) -> None:
    """The parent's SIGTERM handler raises; the workers still running get SIGTERM and run
    their clean-up (here: write a file) before the parent re-raises."""

    def job(i: int) -> None:
        try:
            (tmp_path / f"started-{i}").touch()  # the parent is signalled once every job says so
            time.sleep(60)
        except KeyboardInterrupt:
            (tmp_path / f"cleaned-{i}").write_text("ok")
            raise

    raised: list[int] = []

    def on_term(signum, frame):
        if not raised:  # once: the signal may be sent again below
            raised.append(signum)
            raise KeyboardInterrupt

    # The signal must not land while the parent forks: an exception raised in a fork's
    # after-fork hooks (logging registers one) is printed and dropped.
    waiting = threading.Event()
    real_wait = forked.wait

    def wait_and_say_so(*args, **kwargs):
        waiting.set()  # every worker of the batch has been forked
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(forked, "wait", wait_and_say_so)
    main = threading.main_thread()
    done = threading.Event()

    def signal_once_all_started() -> None:
        """Once every job has started and the parent waits on them (at most 30 s: then the
        assertions below say what did not happen), SIGALRM to the main thread; again until its
        handler has run, as a signal that lands just before the thread enters its wait is
        handled only once that wait returns."""
        deadline = time.monotonic() + 30
        markers = [tmp_path / f"started-{i}" for i in range(3)]
        while not (waiting.is_set() and all(m.exists() for m in markers)):
            if time.monotonic() > deadline:
                break
            if done.wait(0.01):  # run_jobs ended without it: nothing to interrupt
                return
        while not raised and not done.is_set():
            signal.pthread_kill(main.ident, signal.SIGALRM)
            done.wait(0.1)

    previous = signal.signal(signal.SIGALRM, on_term)
    sender = threading.Thread(target=signal_once_all_started, daemon=True)
    started = time.monotonic()
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_jobs([lambda i=i: job(i) for i in range(3)], WorkerPlan(3, 1))
    finally:
        done.set()
        sender.join()
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        *(f"cleaned-{i}" for i in range(3)),
        *(f"started-{i}" for i in range(3)),
    ]


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
