"""Ctrl-C at any moment of a run's life leaves the run ended, and no MLflow call cut in two.

    python tests/support/programs/ctrl_c_at_a_moment.py MOMENT RECEIVER

MOMENT is when SIGINT lands: `creating` (right after MLflow has created the run), `logging`
(before its parameters are written) or `ending` (before its end is recorded). RECEIVER is where
it goes: `main`, the main thread; `other`, another thread of the process, where the kernel may
deliver it while the main thread holds it (MLflow and Ray run threads of their own); or
`ignored`, SIGINT set to be ignored, as in a job started in the background of a shell.

Prints `body ran` when the run's body ran to its end, `interrupted` when a KeyboardInterrupt
came out of the run, then the run's status and its number of parameters (`params=N`).
Run in a process of its own, so that signals reach the main thread as in the CLI.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import mlflow

from pipeline.core import signals
from pipeline.tracking import lifecycle


def ctrl_c(receiver: str, other: threading.Thread) -> None:
    """Send SIGINT to the receiver; return once the main thread has run the Python-level
    handler, which a hold records (at most 30 s)."""
    target = other if receiver == "other" else threading.main_thread()
    signal.pthread_kill(target.ident, signal.SIGINT)
    if receiver == "ignored":
        return
    deadline = time.monotonic() + 30
    while not any(signals._holds) and time.monotonic() < deadline:
        time.sleep(0.01)


def main(moment: str, receiver: str) -> None:
    ignored = receiver == "ignored"
    signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    other = threading.Thread(target=time.sleep, args=(60,), daemon=True)
    other.start()

    owner, name, before = {
        "creating": (mlflow, "start_run", False),
        "logging": (mlflow, "log_params", True),
        "ending": (mlflow.MlflowClient, "set_terminated", True),
    }[moment]
    real = getattr(owner, name)

    def call_with_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        setattr(owner, name, real)  # once
        if before:
            ctrl_c(receiver, other)
        result = real(*args, **kwargs)
        if not before:
            ctrl_c(receiver, other)
        return result

    setattr(owner, name, call_with_ctrl_c)

    try:
        with lifecycle.tracked_run("signals", "interrupted", {}):
            mlflow.log_params({"a": 1, "b": 2})
            signals.stop_if_signalled()
            print("body ran")
    except KeyboardInterrupt:
        print("interrupted")
    exp = mlflow.get_experiment_by_name("signals")
    [run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
    print(run.info.status, f"params={len(run.data.params)}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
