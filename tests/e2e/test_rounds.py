"""Seeds added in rounds under the real `dvc repro` in a scratch copy of the repository: the
rounds train only what is undecided, the report and MLflow say how many seeds each variant got
and why it stopped, an unchanged study is up to date, editing one variant retrains no other
variant's seeds, and the same params give the same seeds, byte for byte."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from tests.support.repo import TINY_PARAMS, make_runner, scratch_repo
from tests.support.tracking import client_for, training_runs

pytestmark = pytest.mark.e2e

# The two seeds of TINY_PARAMS, then one more, once. At two seeds each interval has one degree
# of freedom, and the first look spends (2/3)³ of each comparison's share α/(2·3): a t quantile
# near 250, so a variant that differs from the baseline at all (dropout here) is undecided at
# the first look: the second round has work.
ROUNDS = {"max": 3, "step": 1}
# The validation measures that decide who gets more seeds (docs/verdicts.md).
DRIVING = ("loss_gap_last", "best_val_loss", "best_val_accuracy")


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = copy.deepcopy(TINY_PARAMS)
    params["rounds"] = ROUNDS
    params["mlflow"]["log_model"] = False  # seeds and verdicts are these tests' subject
    repo = scratch_repo(tmp_path_factory.mktemp("rounds") / "repo", params)
    make_runner(repo)("dvc", "repro")
    return repo


def read(repo: Path, path: str) -> dict:
    return json.loads((repo / path).read_text())


def test_rounds_add_seeds_where_undecided_and_say_why_each_stopped(adaptive: Path) -> None:
    rounds = read(adaptive, "rounds/rounds.json")
    assert rounds["looks"] == [2, 3] and rounds["seeds"] == [0, 1, 2]
    outcomes = rounds["variants"]
    first_look = rounds["verdicts_at_looks"][0]["verdicts"]
    for name in ("dropout", "l2"):
        undecided = any(first_look[name][k] == "undecided" for k in DRIVING)
        # Undecided at the first look: one more seed; decided: it stops at two.
        assert outcomes[name]["seeds"] == (3 if undecided else 2), name
        if not undecided:
            assert outcomes[name]["stopped"] == "decided"
    assert outcomes["dropout"]["seeds"] == 3  # see ROUNDS
    assert outcomes["baseline"] == {"seeds": 3, "stopped": "pairs with the variants"}

    # Each seed is one MLflow run; an added seed says which round added it.
    runs = training_runs(adaptive)
    for name, outcome in outcomes.items():
        mine = sorted(
            (int(r.data.tags["seed"]), r.data.tags.get("round"))
            for r in runs
            if r.data.tags["variant"] == name
        )
        assert [seed for seed, _ in mine] == list(range(outcome["seeds"])), name
        assert all((rnd == "1") == (seed == 2) for seed, rnd in mine), name

    # The report has every seed of each variant, and says why each stopped.
    summary = read(adaptive, "reports/summary.json")
    for name, outcome in outcomes.items():
        entry = summary["variants"][name]
        assert (entry["n_seeds"], entry["stopped"]) == (outcome["seeds"], outcome["stopped"])
    change = summary["variants"]["dropout"]["vs_baseline"]["best_val_loss"]
    assert (change["n"], change["looks"]) == (3, 2)
    # 2 variants × 3 measures share α = 0.05; each interval holds over all its looks.
    assert change["confidence"] == pytest.approx(1 - 0.05 / (2 * 3))
    assert change["looks_read"] == 2
    text = (adaptive / "reports" / "gap_report.md").read_text()
    assert "## Seeds" in text and "pairs with the variants" in text
    # So does the report's MLflow run.
    client = client_for(adaptive)
    experiment = client.get_experiment_by_name("tiny-study")
    [report] = client.search_runs([experiment.experiment_id], "tags.kind = 'report'")
    assert report.data.metrics["n_seeds.dropout"] == outcomes["dropout"]["seeds"]
    assert report.data.tags["stopped.baseline"] == "pairs with the variants"


def test_an_unchanged_study_is_up_to_date_and_an_edit_retrains_only_its_variant(
    adaptive: Path,
) -> None:
    run = make_runner(adaptive)
    assert "Data and pipelines are up to date." in run("dvc", "repro").stdout
    before = {r.info.run_id for r in training_runs(adaptive)}

    params = yaml.safe_load((adaptive / "params.yaml").read_text())
    params["variants"]["l2"]["l2"] = 0.002
    (adaptive / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run("dvc", "status", "dvc.yaml", "--json").stdout)
    assert set(status) == {"train@l2", "rounds", "report"}
    run("dvc", "repro")
    new = [r for r in training_runs(adaptive) if r.info.run_id not in before]
    # l2's seeds, and no other variant's: the baseline's and dropout's added seeds are reused.
    outcome = read(adaptive, "rounds/rounds.json")["variants"]["l2"]
    assert sorted(r.data.tags["variant"] for r in new) == ["l2"] * outcome["seeds"]

    # A larger budget is the rounds stage's alone: no train stage would run again.
    params["rounds"]["max"] = 4
    (adaptive / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run("dvc", "status", "dvc.yaml", "--json").stdout)
    assert set(status) == {"rounds"}
    params["rounds"]["max"] = ROUNDS["max"]
    (adaptive / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_the_same_params_give_the_same_added_seeds(adaptive: Path) -> None:
    run = make_runner(adaptive)
    lock = yaml.safe_load((adaptive / "dvc.lock").read_text())
    [kept] = lock["stages"]["rounds"]["outs"]
    record = read(adaptive, "rounds/baseline/seed2/record.json")
    # Trained again from nothing, the added seeds come out byte for byte the same.
    run("rm", "-rf", "rounds")
    run("dvc", "repro", "rounds")
    again = yaml.safe_load((adaptive / "dvc.lock").read_text())["stages"]["rounds"]["outs"][0]
    assert again["md5"] == kept["md5"]
    assert read(adaptive, "rounds/baseline/seed2/record.json") == record
