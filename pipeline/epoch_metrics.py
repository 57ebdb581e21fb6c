"""A run's per-epoch metrics in the tracking store, each (key, epoch) exactly once."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from .errors import MetricsLost


class EpochMetrics:
    """A run's per-epoch metrics, each (key, epoch) in the store exactly once.

    Each epoch is queued (`synchronous=False`: MLflow writes it in the background) and its
    future kept; `confirm` waits until everything queued is written, and a write that failed
    (a locked store, a server answering 5xx) ends the run FAILED with `failure=metrics_lost`
    instead of FINISHED with a hole. A resumed run first reads which epochs the store holds,
    and does not log those again."""

    def __init__(self, run_id: str, resumed: bool):
        self.run_id = run_id
        self.pending: list[Any] = []
        self.stored: dict[str, set[int]] = {}
        if resumed:
            import mlflow

            client = mlflow.MlflowClient()
            for key in client.get_run(run_id).data.metrics:
                self.stored[key] = {m.step for m in client.get_metric_history(run_id, key)}

    def log(self, epoch: int, row: dict[str, float]) -> None:
        import mlflow

        fresh = {k: v for k, v in row.items() if epoch not in self.stored.get(k, ())}
        if fresh:
            operation = mlflow.log_metrics(fresh, step=epoch, synchronous=False, run_id=self.run_id)
            self.pending.append(operation)

    def confirm(self) -> None:
        """Block until every queued epoch is in the store; MetricsLost if one is not."""
        import mlflow
        from mlflow.exceptions import MlflowException

        if not self.pending:
            return
        mlflow.flush_async_logging()
        pending, self.pending = self.pending, []
        try:
            for operation in pending:
                operation.wait()
        except MlflowException as e:
            first = str(e).strip().splitlines()[0][:300]
            reason = f"per-epoch metrics did not reach the store: {first}"
            with suppress(MlflowException):  # the store is failing; the run still ends FAILED
                mlflow.MlflowClient().set_tag(self.run_id, "failure", "metrics_lost")
            raise MetricsLost(reason) from None
