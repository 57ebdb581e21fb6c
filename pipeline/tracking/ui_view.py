"""The MLflow UI's view of a study: its training runs grouped by variant, with the mean and the
range over seeds of `val_loss` and `loss_gap` per epoch, and a colour per variant.

The view is one of the experiment's saved views, the ones the runs page lists under *Views*
(MLflow 3.15 on). The UI keeps each in an experiment tag `mlflow.sharedViewState.<id>` whose
value is an envelope, `{"name", "createdAt", "updatedAt", "state"}` (times in ms), with the
page's state as JSON text, deflated and base64-encoded after `deflate;` as the UI's own Save
does; the page address's `viewStateShareKey=<id>` opens it. The id is the key the project has
always used, so addresses printed before it became a saved view open it too (the UI reads the
older value, the bare state, from the same tag). The report writes the tag; `link` is the
address, and `next_steps` what the study prints at its end.

The tuned study has a view of its own (`install_tuned`, key `tuned-by-technique`): the strength
paths' runs each seed chose (`tags.chosen = 'true'`), grouped by technique, so a technique's
row is its tuned result, a seed at whatever strength that seed chose.

A variant's colour goes to its training runs as the tag `mlflow.runColor`, which the UI reads
for a run's colour. A group of runs has no colour a client can set: the UI keeps the colour
picked for a group in the browser (its local storage), else derives one from a hash of the
group's id, `tag.variant.<name>`, so two groups may share one.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import store

KEY = "by-variant"
TAG = f"mlflow.sharedViewState.{KEY}"
NAME = "By variant: mean and range over seeds"
SECTION = "gap"
CHARTED = ("val_loss", "loss_gap")
LOCAL_UI = "http://127.0.0.1:5000"  # where `python -m pipeline ui` serves it by default
DEFLATED = "deflate;"  # how the UI marks a state it compressed

COLOR_TAG = "mlflow.runColor"
# Ten colours of MLflow's own run palette, far apart, in the order of matplotlib's default
# cycle (blue, orange, green, red, purple, brown, pink, grey, yellow, teal): the i-th variant
# of params.yaml takes the i-th, an eleventh the first again.
PALETTE = (
    "#2272b4",
    "#de7921",
    "#308613",
    "#c83243",
    "#8a63bf",
    "#a6630c",
    "#b45091",
    "#5f7281",
    "#facb66",
    "#04867d",
)


def colours(variants: Iterable[str]) -> dict[str, str]:
    """Each variant's colour, by its place in `variants` (params.yaml's order)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(variants)}


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


TUNED_KEY = "tuned-by-technique"
TUNED_TAG = f"mlflow.sharedViewState.{TUNED_KEY}"
TUNED_NAME = "Tuned: each technique at the strengths its seeds chose"


def view_state(variants: Iterable[str]) -> dict[str, Any]:
    """Training runs only, one row per variant (its seeds folded in), charts of the group mean.

    With runs grouped and `average` as the aggregate, the UI draws each group's line as the
    mean over its runs and shades the band from their minimum to their maximum.
    """
    return _grouped(
        "tags.kind = 'train'",
        "variant",
        variants,
        "Per variant: mean over seeds, band from min to max",
    )


def tuned_view_state(techniques: Iterable[str]) -> dict[str, Any]:
    """The strength paths' chosen runs, one row per technique (its seeds folded in, each at the
    strength it chose), charts of the group mean."""
    return _grouped(
        "tags.kind = 'sweep' AND tags.chosen = 'true'",
        "sweep_technique",
        techniques,
        "Per technique, tuned: mean over seeds, band from min to max",
    )


def _grouped(search: str, tag: str, groups: Iterable[str], section: str) -> dict[str, Any]:
    return {
        "searchFilter": search,
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": tag}],
        },
        "groupsExpanded": {f"tag.{tag}.{name}": False for name in groups},
        "useGroupedValuesInCharts": True,
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": [_line_chart(metric) for metric in CHARTED],
        "compareRunSections": [
            {
                "uuid": SECTION,
                "name": section,
                "display": True,
                "isReordered": False,
                "deleted": False,
                "isGenerated": False,
            }
        ],
        "isAccordionReordered": True,  # keeps the section above MLflow's generated ones
        "hideEmptyCharts": True,
    }


def envelope(state: dict[str, Any], created_at: int, updated_at: int, name: str = NAME) -> str:
    """The value of a saved view's tag: its name, when it was made and last changed (ms since
    the epoch), and `state` as the UI's Save writes it (`deflate;` + base64 of zlib's deflate
    of the JSON)."""
    text = json.dumps(state, separators=(",", ":"))
    packed = DEFLATED + base64.b64encode(zlib.compress(text.encode())).decode("ascii")
    return json.dumps(
        {"name": name, "createdAt": created_at, "updatedAt": updated_at, "state": packed}
    )


def read_envelope(value: str) -> dict[str, Any]:
    """A saved view's envelope with its state unpacked, as the UI reads it; `ValueError` for
    what the UI would not list (the bare state of a view written before saved views)."""
    found = json.loads(value)
    if not (
        isinstance(found, dict)
        and isinstance(found.get("name"), str)
        and type(found.get("createdAt")) in (int, float)
        and isinstance(found.get("state"), str)
    ):
        raise ValueError("not a saved view: no string name, number createdAt, string state")
    state = found["state"]
    if state.startswith(DEFLATED):
        state = zlib.decompress(base64.b64decode(state[len(DEFLATED) :])).decode()
    return {**found, "state": json.loads(state)}


def install(client: Any, experiment_id: str, variants: Iterable[str]) -> None:
    """Write the view into the experiment (replacing an older one of the same key, whose
    creation time it keeps) and give each variant's training runs the variant's colour."""
    variants = list(variants)
    _save(client, experiment_id, TAG, NAME, view_state(variants))
    paint(client, experiment_id, variants)


def install_tuned(client: Any, experiment_id: str, techniques: Iterable[str]) -> None:
    """Write the tuned study's view into the experiment (as `install` does the study's)."""
    _save(client, experiment_id, TUNED_TAG, TUNED_NAME, tuned_view_state(techniques))


def _save(client: Any, experiment_id: str, tag: str, name: str, state: dict[str, Any]) -> None:
    now = int(time.time() * 1000)
    try:
        created = read_envelope(client.get_experiment(experiment_id).tags[tag])["createdAt"]
    except (KeyError, ValueError):  # none yet, or one written before saved views
        created = now
    # The store refuses a tag over 20,000 characters (MlflowException), as the UI refuses to
    # save such a view; deflated, one of 100 variants with 20-letter names takes about 3,000.
    client.set_experiment_tag(experiment_id, tag, envelope(state, created, now, name))


def paint(client: Any, experiment_id: str, variants: list[str]) -> None:
    """`mlflow.runColor` on each training run of a variant of `variants`: that variant's
    colour. Runs of a variant no longer in params.yaml keep theirs; a run that has its colour
    already is not written again."""
    colour = colours(variants)
    for run in _training_runs(client, experiment_id):
        wanted = colour.get(run.data.tags.get("variant", ""))
        if wanted is not None and run.data.tags.get(COLOR_TAG) != wanted:
            client.set_tag(run.info.run_id, COLOR_TAG, wanted)


def _training_runs(client: Any, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], "tags.kind = 'train'", max_results=1000, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def link(base: str, experiment_id: str, key: str = KEY) -> str:
    """The address of the view `key` on a UI served at `base` (`http://127.0.0.1:5000`)."""
    query = f"viewStateShareKey={key}&compareRunsMode=CHART&workflowType=machine_learning"
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
