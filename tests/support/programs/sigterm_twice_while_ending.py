"""A repeated SIGTERM does not cut the end of a run short. A scheduler may send SIGTERM more
than once; here the second lands while the run is being ended KILLED.

    python tests/support/programs/sigterm_twice_while_ending.py

Prints `interrupted`, then the run's status (KILLED).
"""

from __future__ import annotations

import signal
from typing import Any

import mlflow

from pipeline.core import signals
from pipeline.tracking import lifecycle


def main() -> None:
    signals.cli_handles_sigterm()  # SIGTERM interrupts, as in the command line
    real = mlflow.MlflowClient.set_terminated

    def set_terminated_after_sigterm(*args: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGTERM)
        return real(*args, **kwargs)

    mlflow.MlflowClient.set_terminated = set_terminated_after_sigterm
    try:
        with lifecycle.tracked_runs("signals", [("sigterm-twice", {}, None)]):
            signal.raise_signal(signal.SIGTERM)
            signals.stop_if_signalled()
    except KeyboardInterrupt:
        print("interrupted")
    exp = mlflow.get_experiment_by_name("signals")
    [run] = mlflow.MlflowClient().search_runs([exp.experiment_id])
    print(run.info.status)


if __name__ == "__main__":
    main()
