"""The study's view in the MLflow UI, against a real SQLite store: the saved view's tag as the
UI parses it, and a colour of its own for each variant's training runs."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipeline.tracking import ui_view
from tests.support.tracking import own_store

VARIANTS = ["baseline", "dropout", "l2", "l1", "elastic_net"]


@pytest.fixture
def client(tmp_path: Path):
    with own_store(tmp_path):
        yield MlflowClient()


def train_run(client: MlflowClient, experiment: str, variant: str, seed: int) -> str:
    tags = {"kind": "train", "variant": variant, "seed": str(seed)}
    run = client.create_run(experiment, tags=tags, run_name=f"{variant}-seed{seed}")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_every_variant_gets_a_colour_of_its_own_for_up_to_ten() -> None:
    ten = [f"v{i}" for i in range(10)]
    colours = ui_view.colours(ten)
    assert list(colours) == ten
    assert len(set(colours.values())) == 10
    assert all(len(c) == 7 and c.startswith("#") and int(c[1:], 16) >= 0 for c in colours.values())
    # By place, not by name: the same place gives the same colour whatever the variant's name,
    # and an eleventh variant takes the first colour again.
    assert ui_view.colours(["a", "b"]) == {"a": colours["v0"], "b": colours["v1"]}
    assert ui_view.colours([*ten, "v10"])["v10"] == colours["v0"]


def test_the_report_colours_each_variants_training_runs(client: MlflowClient) -> None:
    # The pair whose hash colours clash in the UI (group ids tag.variant.dropout and
    # tag.variant.early_stopping) among them.
    variants = [*VARIANTS, "early_stopping"]
    experiment = client.create_experiment("study")
    runs = {(v, s): train_run(client, experiment, v, s) for v in variants for s in (0, 1)}
    retired = train_run(client, experiment, "removed_variant", 0)  # not in params.yaml now
    report = client.create_run(experiment, tags={"kind": "report"}).info.run_id

    ui_view.install(client, experiment, variants)

    def colour(run_id: str) -> str | None:
        return client.get_run(run_id).data.tags.get(ui_view.COLOR_TAG)

    by_variant = {v: {colour(runs[v, s]) for s in (0, 1)} for v in variants}
    assert all(len(seen) == 1 for seen in by_variant.values()), by_variant  # one per variant
    assert len({c for seen in by_variant.values() for c in seen}) == len(variants)  # distinct
    assert by_variant["baseline"] == {ui_view.PALETTE[0]}  # params.yaml's first, the first
    assert colour(retired) is None and colour(report) is None

    ui_view.install(client, experiment, list(reversed(variants)))  # params.yaml reordered
    assert colour(runs["early_stopping", 1]) == ui_view.PALETTE[0]


def test_the_view_is_a_saved_view_as_the_ui_reads_it(client: MlflowClient) -> None:
    experiment = client.create_experiment("study")
    ui_view.install(client, experiment, VARIANTS)
    value = client.get_experiment(experiment).tags[ui_view.TAG]

    # What MLflow 3.17's UI requires of a saved view of the runs page (its bundle, under
    # mlflow/server/js/build/static/js): the tag is `mlflow.sharedViewState.<id>` (the prefix
    # beside `viewStateShareKey` in main.*.js), and its value parses as an object with a string
    # `name`, a number `createdAt` and a string `state`, `updatedAt` a number when present (the
    # chunk that throws "Invalid saved-view envelope"); a state that starts with `deflate;` is
    # the base64 of zlib's deflate of the JSON (pako's inflate, main.*.js), else the JSON.
    assert ui_view.TAG == "mlflow.sharedViewState." + ui_view.KEY
    envelope = json.loads(value)
    assert set(envelope) == {"name", "createdAt", "updatedAt", "state"}
    assert envelope["name"] == ui_view.NAME
    assert isinstance(envelope["createdAt"], int) and isinstance(envelope["updatedAt"], int)
    assert envelope["state"].startswith("deflate;")
    state = json.loads(zlib.decompress(base64.b64decode(envelope["state"][len("deflate;") :])))
    # The page's state: search facets and UI state under the keys the UI restores.
    assert state["searchFilter"] == "tags.kind = 'train'"
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "variant"}]
    assert state["groupBy"]["aggregateFunction"] == "average"
    assert state["useGroupedValuesInCharts"] is True
    assert [c["metricKey"] for c in state["compareRunCharts"]] == list(ui_view.CHARTED)
    assert set(state["groupsExpanded"]) == {f"tag.variant.{v}" for v in VARIANTS}
    assert ui_view.read_envelope(value)["state"] == state

    address = ui_view.link("http://ui:5000", experiment)
    assert f"#/experiments/{experiment}/runs?viewStateShareKey={ui_view.KEY}&" in address


def test_a_later_report_replaces_the_view_and_keeps_when_it_was_made(
    client: MlflowClient,
) -> None:
    experiment = client.create_experiment("study")
    # The bare state that reports wrote before saved views: the UI opens it, lists it not.
    client.set_experiment_tag(experiment, ui_view.TAG, json.dumps(ui_view.view_state(["old"])))
    with pytest.raises(ValueError, match="not a saved view"):
        ui_view.read_envelope(client.get_experiment(experiment).tags[ui_view.TAG])

    ui_view.install(client, experiment, VARIANTS)
    first = ui_view.read_envelope(client.get_experiment(experiment).tags[ui_view.TAG])
    ui_view.install(client, experiment, ["baseline", "l2"])
    second = ui_view.read_envelope(client.get_experiment(experiment).tags[ui_view.TAG])

    assert second["createdAt"] == first["createdAt"]
    assert second["updatedAt"] >= first["updatedAt"]
    assert set(second["state"]["groupsExpanded"]) == {"tag.variant.baseline", "tag.variant.l2"}


def test_the_tuned_view_groups_the_chosen_runs_by_technique(client: MlflowClient) -> None:
    """Its filter, run against the store, finds the paths' runs each seed chose and no other;
    the rows are techniques."""
    experiment = client.create_experiment("study")
    chosen_ids = set()
    for technique, strength, seed, chosen in (
        ("l2", "0.001", 0, "true"),
        ("l2", "0.01", 0, "false"),
        ("l2", "0.01", 1, "true"),
        ("dropout", "0.3", 0, "true"),
        ("dropout", "0.5", 0, "false"),
    ):
        tags = {
            "kind": "sweep",
            "sweep_technique": technique,
            "sweep_strength": strength,
            "seed": str(seed),
            "chosen": chosen,
        }
        run_id = client.create_run(experiment, tags=tags).info.run_id
        if chosen == "true":
            chosen_ids.add(run_id)
    train_run(client, experiment, "baseline", 0)  # the study's runs are not in this view

    ui_view.install_tuned(client, experiment, ["dropout", "l2"])
    saved = ui_view.read_envelope(client.get_experiment(experiment).tags[ui_view.TUNED_TAG])
    assert saved["name"] == ui_view.TUNED_NAME
    state = saved["state"]
    found = client.search_runs([experiment], state["searchFilter"])
    assert {r.info.run_id for r in found} == chosen_ids
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "sweep_technique"}]
    assert set(state["groupsExpanded"]) == {
        "tag.sweep_technique.dropout",
        "tag.sweep_technique.l2",
    }
    # The study's own view stays as it was: another key.
    assert ui_view.TAG not in client.get_experiment(experiment).tags
    address = ui_view.link("http://ui:5000", experiment, ui_view.TUNED_KEY)
    assert f"viewStateShareKey={ui_view.TUNED_KEY}&" in address
