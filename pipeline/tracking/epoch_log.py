"""A run's per-epoch metrics in the tracking store, each (key, epoch) exactly once."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from ..core.errors import MetricsLost

# Epochs are sent in one batch per run at most this often (and at every checkpoint and at the
# end). The seeds of a stack log in turn, and MLflow's queue merges only neighbouring writes
# of one run: sent epoch by epoch, a stack of K seeds becomes one request per seed and epoch,
# which a tracking server on PostgreSQL answers more slowly than they come.
FLUSH_SECONDS = 5.0


class EpochMetrics:
    """A run's per-epoch metrics, each (key, epoch) in the store exactly once.

    Epochs are collected and sent as one batch (`synchronous=False`: MLflow writes it in the
    background) every few seconds, and each batch's future kept; `confirm` sends what is
    left and waits until everything is written, and a write that failed (a locked store, a
    server answering 5xx) ends the run FAILED with `failure=metrics_lost` instead of FINISHED
    with a hole. A resumed run first reads which epochs the store holds, and does not log
    those again."""

    def __init__(self, run_id: str, resumed: bool):
        import mlflow

        self.run_id = run_id
        self.client = mlflow.MlflowClient()
        self.pending: list[Any] = []
        self.unsent: list[Any] = []
        self.sent_at = time.monotonic()
        self.stored: dict[str, set[int]] = {}
        if resumed:
            for key in self.client.get_run(run_id).data.metrics:
                history = self.client.get_metric_history(run_id, key)
                self.stored[key] = {m.step for m in history}

    def log(self, epoch: int, row: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in row.items():
            if epoch not in self.stored.get(key, ()):
                self.unsent.append(Metric(key, value, now, epoch))
        if time.monotonic() - self.sent_at >= FLUSH_SECONDS:
            self._send()

    def _send(self) -> None:
        self.sent_at = time.monotonic()
        if self.unsent:
            batch, self.unsent = self.unsent, []
            self.pending.append(self.client.log_batch(self.run_id, batch, synchronous=False))

    def confirm(self) -> None:
        """Block until every epoch logged so far is in the store; MetricsLost if one is not."""
        import mlflow
        from mlflow.exceptions import MlflowException

        self._send()
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
                self.client.set_tag(self.run_id, "failure", "metrics_lost")
            raise MetricsLost(reason) from None
