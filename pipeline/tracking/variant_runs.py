"""Each variant of a study as an MLflow run of its own, the parent of its seeds' runs.

Its metrics are the variant's means over seeds, each with a 95 % t-interval of the mean
(`<key>_low`, `<key>_high`), and its mean learning curves (the seeds' per-epoch metrics,
averaged, at the same keys and steps), so MLflow's own runs table, compare view and charts
show a variant as one row: a number with its error bar, a curve. An interval here is one
variant's own spread over seeds, for drawing: not a comparison, not corrected for the others;
the report's verdicts are the comparisons.

One parent per variant and report (its summary's digest); a seed's run joins the newest
report's parent. A DVC experiment reuses the runs of the variants it did not change, so a
seed shared by two studies sits under the one reported last. Runs made before parents
existed are adopted the same way when a report reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a run under this one
KIND = "variant"


@dataclass(frozen=True)
class VariantRun:
    """What a variant's parent run holds: summary metrics, per-epoch means (key → epoch →
    value), its seeds' run ids and its tags."""

    name: str
    metrics: Mapping[str, float]
    curves: Mapping[str, Mapping[int, float]]
    seed_runs: Iterable[str]
    tags: Mapping[str, str] = field(default_factory=dict)


def log_variant_runs(
    experiment_id: str, digest: str, parent: str | None, variants: Iterable[VariantRun]
) -> dict[str, str]:
    """A parent run per variant for the report of `digest` (under `parent`, the run the report
    itself is nested in, if any), its seeds' runs moved under it; the run id per variant.
    Logged once per digest: a second call finds the runs of the first."""
    import time

    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    logged = {
        r.data.tags["variant"]: r.info.run_id
        for r in client.search_runs(
            [experiment_id],
            f"tags.kind = '{KIND}' and tags.summary_digest = '{digest}'",
            max_results=1000,
        )
    }
    ids = {}
    for v in variants:
        run_id = logged.get(v.name)
        if run_id is None:
            tags = {**v.tags, "kind": KIND, "variant": v.name, "summary_digest": digest}
            if parent:
                tags[PARENT_TAG] = parent
            run_id = client.create_run(experiment_id, run_name=v.name, tags=tags).info.run_id
            now = int(time.time() * 1000)
            metrics = [Metric(k, float(x), now, 0) for k, x in v.metrics.items()]
            metrics += [
                Metric(k, float(x), now, epoch)
                for k, c in v.curves.items()
                for epoch, x in c.items()
            ]
            for start in range(0, len(metrics), 1000):  # MLflow takes 1,000 metrics a batch
                client.log_batch(run_id, metrics=metrics[start : start + 1000])
            client.set_terminated(run_id)
        for seed_run in v.seed_runs:
            if _adoptable(client, seed_run, experiment_id):
                client.log_batch(seed_run, tags=[RunTag(PARENT_TAG, run_id)])
        ids[v.name] = run_id
    return ids


def _adoptable(client: object, run_id: str, experiment_id: str) -> bool:
    """Whether a seed's run is there to nest: in this experiment (the outputs may have been
    logged to another one) and not deleted."""
    from mlflow.exceptions import MlflowException

    try:
        info = client.get_run(run_id).info  # type: ignore[attr-defined]
    except MlflowException:
        return False
    return info.experiment_id == experiment_id and info.lifecycle_stage == "active"
