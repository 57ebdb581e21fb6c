"""The report's recommendation in the MLflow Model Registry: the kept network of the variant
the report recommends, registered under the experiment's name with the alias `recommended`,
so that `mlflow.pyfunc.load_model("models:/<name>@recommended")` gives it (a `python_function`
model on raw inputs: `tracking/logged_model.py`) and `mlflow models serve -m
"models:/<name>@recommended"` serves it. A new report moves the alias (or removes it when
it recommends nothing); it never deletes a version.

The recommendation reads the report's own verdicts on validation data only: of the variants
whose best val loss is decided *better* than the baseline's, the one of lowest mean best val
loss, and of its seeds the one of lowest best val loss. The test split never drives it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.records import RunRecord

ALIAS = "recommended"
MEASURE = "best_val_loss"


@dataclass(frozen=True)
class Recommendation:
    variant: str
    record: RunRecord  # the seed whose kept network is registered
    comparison: Mapping  # the report's comparison of the variant with the baseline

    def tags(self) -> dict[str, str]:
        c = self.comparison
        return {
            "variant": self.variant,
            "seed": str(self.record.seed),
            "measure": MEASURE,
            "verdict": str(c["verdict"]),
            "interval": f"{c['mean']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]",
            "confidence": f"{c['confidence']:.4f}",
        }


def recommend(
    summary: Mapping, records: Mapping[str, Sequence[RunRecord]]
) -> Recommendation | None:
    """What the report recommends (see the module's docstring); None when no variant is
    decided better than the baseline on best val loss."""
    better = [
        (entry[MEASURE]["mean"], name, entry["vs_baseline"][MEASURE])
        for name, entry in summary["variants"].items()
        if entry.get("vs_baseline", {}).get(MEASURE, {}).get("verdict") == "better"
        and records.get(name)
    ]
    if not better:
        return None
    _, name, comparison = min(better)
    best_seed = min(records[name], key=lambda r: (r.summary[MEASURE], r.seed))
    return Recommendation(name, best_seed, comparison)


def register(
    model_name: str, chosen: Recommendation | None, run_id: str | None, report_run_id: str
) -> str | None:
    """Point the alias at the logged model of the chosen seed's run `run_id` (a new version,
    unless one of that run exists) and tag the version; remove the alias when nothing is
    chosen. The version, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    if chosen is None or run_id is None:
        with contextlib.suppress(MlflowException):  # no such model or alias yet
            client.delete_registered_model_alias(model_name, ALIAS)
        return None
    existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if existing:
        version = str(max(int(v.version) for v in existing))
    else:
        logged = client.get_run(run_id).outputs.model_outputs
        source = f"models:/{logged[0].model_id}" if logged else f"runs:/{run_id}/model"
        version = str(mlflow.register_model(source, model_name).version)
    for key, value in {**chosen.tags(), "report_run_id": report_run_id}.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_registered_model_alias(model_name, ALIAS, version)
    return version
