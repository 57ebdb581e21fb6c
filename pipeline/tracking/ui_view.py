"""The MLflow UI's view of a study: its training runs grouped by variant, with the mean and the
range over seeds of `val_loss` and `loss_gap` per epoch.

The UI keeps a view of an experiment page (filter, grouping, charts) in an experiment tag
`mlflow.sharedViewState.<key>`, the tag its own Share button writes, and opens it from the page
address's `viewStateShareKey=<key>`. The report writes the tag; `link` is the address, and
`next_steps` what the study prints at its end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import store

KEY = "by-variant"
TAG = f"mlflow.sharedViewState.{KEY}"
SECTION = "gap"
CHARTED = ("val_loss", "loss_gap")
LOCAL_UI = "http://127.0.0.1:5000"  # where `python -m pipeline ui` serves it by default


def _line_chart(metric: str) -> dict[str, Any]:
    return {
        "uuid": f"{SECTION}-{metric}",
        "type": "LINE",
        "metricKey": metric,
        "metricSectionId": SECTION,
        "isGenerated": False,
        "deleted": False,
        "runsCountToCompare": 100,
        "lineSmoothness": 0,
        "scaleType": "linear",
        "xAxisScaleType": "linear",
        "xAxisKey": "step",  # the step of a per-epoch metric is its epoch
        "selectedXAxisMetricKey": "",
        "useGlobalXaxisKey": True,
        "useGlobalLineSmoothing": True,
    }


def view_state(variants: Iterable[str]) -> dict[str, Any]:
    """Training runs only, one row per variant (its seeds folded in), charts of the group mean.

    With runs grouped and `average` as the aggregate, the UI draws each group's line as the
    mean over its runs and shades the band from their minimum to their maximum.
    """
    return {
        "searchFilter": "tags.kind = 'train'",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": "variant"}],
        },
        "groupsExpanded": {f"tag.variant.{name}": False for name in variants},
        "useGroupedValuesInCharts": True,
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": [_line_chart(metric) for metric in CHARTED],
        "compareRunSections": [
            {
                "uuid": SECTION,
                "name": "Per variant: mean over seeds, band from min to max",
                "display": True,
                "isReordered": False,
                "deleted": False,
                "isGenerated": False,
            }
        ],
        "isAccordionReordered": True,  # keeps the section above MLflow's generated ones
        "hideEmptyCharts": True,
    }


def install(client: Any, experiment_id: str, variants: Iterable[str]) -> None:
    """Write the view into the experiment (replacing an older one of the same key)."""
    client.set_experiment_tag(experiment_id, TAG, json.dumps(view_state(variants)))


def link(base: str, experiment_id: str) -> str:
    """The address of the view on a UI served at `base` (`http://127.0.0.1:5000`)."""
    query = f"viewStateShareKey={KEY}&compareRunsMode=CHART&workflowType=machine_learning"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def next_steps(report: Path, experiment: str) -> str:
    """Where the report is, and how to open the MLflow UI on this store at the study's view."""
    uri = store.tracking_uri()
    if uri.startswith(("http://", "https://")):
        ui_hint = f"MLflow UI (the tracking server serves it): {view_address(uri, experiment)}"
    else:
        ui_hint = (
            "MLflow UI: python -m pipeline ui  (or: make ui; mlflow ui --backend-store-uri "
            f"{uri} --host 127.0.0.1), then open {view_address(LOCAL_UI, experiment)}"
        )
    return f"\nReport: {report}\n{ui_hint}"


def view_address(base: str, experiment: str) -> str:
    """The study's view on the UI served at `base`; the UI's front page while the experiment
    has no report yet."""
    _, found = store.find_experiment(experiment)
    if found is None or TAG not in found.tags:
        return base
    return link(base, found.experiment_id)
