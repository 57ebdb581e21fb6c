"""Ctrl-C pressed twice stops a run whose body hangs with no safe point to stop at, as a call
to a tracking server that does not answer; the run still ends KILLED.

    python tests/support/programs/ctrl_c_twice_while_stuck.py

Prints `interrupted` (or `body ran`, had the body not been stopped), then `in time` when it
stopped within 30 s (`too late` otherwise), then the run's status.
"""

from __future__ import annotations

import signal
import threading
import time

import mlflow

from pipeline.core import signals
from pipeline.tracking import lifecycle


def press_twice(opened: threading.Event) -> None:
    """Once the run's body has started: Ctrl-C, then, once the hold has recorded that press
    (at most 30 s), Ctrl-C again. Two presses sent before the main thread runs its handler
    would count as one."""
    main = threading.main_thread()
    opened.wait()
    signal.pthread_kill(main.ident, signal.SIGINT)
    deadline = time.monotonic() + 30
    while not any(signals._holds) and time.monotonic() < deadline:
        time.sleep(0.01)
    signal.pthread_kill(main.ident, signal.SIGINT)


def hang(seconds: float) -> None:
    """Block for `seconds`, with no safe point to stop at. In short waits: a signal that lands
    just before a blocking call begins is handled only once that call returns (CPython runs
    handlers between bytecodes), so one 60 s wait could take in a press a minute late."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    opened = threading.Event()
    threading.Thread(target=press_twice, args=(opened,), daemon=True).start()
    try:
        with lifecycle.tracked_run("signals", "stuck", {}):
            started = time.monotonic()
            opened.set()
            hang(60)
            print("body ran")
    except KeyboardInterrupt:
        print("interrupted")
    print("in time" if time.monotonic() - started < 30 else "too late")
    exp = mlflow.get_experiment_by_name("signals")
    [run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
    print(run.info.status)


if __name__ == "__main__":
    main()
