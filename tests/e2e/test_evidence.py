"""Evidence a reader can trust, through the real pipeline: a problem with a known answer, and
strength paths as DVC stages. The cross-study comparison read back from MLflow is checked on
`make noise`'s experiments (tests/e2e/test_documented_commands.py)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from safetensors.numpy import load_file
from scipy import stats

from pipeline.tracking import ui_view
from tests.support.repo import TINY_PARAMS, make_runner, scratch_repo

pytestmark = pytest.mark.e2e

N_INPUTS, N_RELEVANT = 40, 4


def linear_teacher(path: Path, n: int = 500, seed: int = 0) -> None:
    """3 classes decided by a linear teacher on the first 4 inputs; 36 inputs of pure noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_INPUTS)).astype(np.float32)
    y = (x[:, :N_RELEVANT] @ rng.normal(size=(N_RELEVANT, 3))).argmax(axis=1)
    np.savez(path, x=x, y=y.astype(np.int64))


def first_layer(repo: Path, variant: str, seed: int) -> np.ndarray:
    state = load_file(repo / "models" / variant / f"seed{seed}" / "model.safetensors")
    [weight] = [w for w in state.values() if w.shape == (32, N_INPUTS)]
    return np.abs(weight)


def test_l1_zeroes_the_irrelevant_inputs_of_a_linear_teacher(tmp_path: Path) -> None:
    """200 training examples, 40 inputs of which 4 matter. The answer is known: L1 must drive
    the weights of the 36 noise inputs to (near) zero while keeping the 4 that matter, and the
    report must rank it ahead of the baseline, which fits the noise."""
    data = tmp_path / "teacher.npz"
    linear_teacher(data)
    params = copy.deepcopy(TINY_PARAMS)
    params["data"] = {
        "dataset": "npz",
        "path": str(data),
        "val_fraction": 0.3,
        "test_fraction": 0.3,
        "split_seed": 0,
    }
    params["model"] = {"hidden_sizes": [32]}
    params["train"].update(epochs=60, batch_size=32, lr=0.003, seeds=[0, 1, 2], checkpoint_every=0)
    params["variants"] = {"baseline": {}, "l1": {"l1": 0.01}}
    params["mlflow"]["log_model"] = False
    repo = scratch_repo(tmp_path / "repo", params)
    make_runner(repo)("python", "-m", "pipeline", "study")  # the science, not DVC: one process

    for seed in (0, 1, 2):
        l1, base = first_layer(repo, "l1", seed), first_layer(repo, "baseline", seed)
        noise_l1, noise_base = l1[:, N_RELEVANT:], base[:, N_RELEVANT:]
        assert (noise_l1 < 1e-2).mean() > 0.8, seed  # L1: the noise inputs are switched off
        assert (noise_base < 1e-2).mean() < 0.2, seed  # the baseline uses them
        columns = np.linalg.norm(l1, axis=0)  # how much each input feeds the network
        assert columns[:N_RELEVANT].min() > 2 * columns[N_RELEVANT:].max(), seed

    summary = json.loads((repo / "reports" / "summary.json").read_text())
    assert summary["ranking_by_best_val_loss"] == ["l1", "baseline"]
    vs = summary["variants"]["l1"]["vs_baseline"]
    assert vs["best_val_loss"]["verdict"] == "better"
    assert vs["loss_gap_last"]["verdict"] == "closes the gap"
    assert vs["best_val_loss"]["n"] == 3
    report = (repo / "reports" / "gap_report.md").read_text()
    assert "1. l1, 2. baseline" in report


def test_a_variant_that_cannot_differ_is_never_called_better_or_worse(tmp_path: Path) -> None:
    """An L2 penalty of 1e-12 changes no weight that float32 can show: its verdicts against the
    baseline can be identical, equivalent or undecided, never a difference."""
    params = copy.deepcopy(TINY_PARAMS)
    params["train"].update(seeds=[0, 1, 2], checkpoint_every=0)
    params["variants"] = {"baseline": {}, "l2": {"l2": 1e-12}, "dropout": {"dropout": 0.5}}
    params["mlflow"]["log_model"] = False
    repo = scratch_repo(tmp_path / "repo", params)
    make_runner(repo)("python", "-m", "pipeline", "study")
    summary = json.loads((repo / "reports" / "summary.json").read_text())
    vs = summary["variants"]["l2"]["vs_baseline"]
    assert set(vs) == {"loss_gap_last", "best_val_loss", "test_accuracy"}
    for key, comparison in vs.items():
        assert comparison["verdict"] in {"identical on every seed", "equivalent", "undecided"}, (
            key,
            comparison,
        )
        assert comparison["comparisons"] == 2  # l2 and dropout against the baseline
        # ... on each of the table's 3 measures: α covers the 6 together.
        assert comparison["confidence"] == pytest.approx(1 - 0.05 / 6)


SWEEP = copy.deepcopy(TINY_PARAMS)
SWEEP["variants"] = {"baseline": {}}  # what the paths start from
SWEEP["sweep"].update(dropout=[0.3], l2=[0.01])
SWEEP["sweep"]["combined"] = {"dropout": [0.3], "weight_decay": [0.1]}  # a joint grid of one
# The tuned study adds a seed (2) to each technique undecided on seeds 0 and 1: all of them.
SWEEP["rounds"] = {"max": 3, "step": 1}


def running_stages(output: str) -> set[str]:
    return {
        line.split("'")[1].split(":")[-1]
        for line in output.splitlines()
        if line.startswith("Running stage")
    }


def test_strength_paths_run_one_stage_per_point_and_report_against_the_baseline(
    tmp_path: Path,
) -> None:
    repo = scratch_repo(tmp_path / "repo", SWEEP)
    run = make_runner(repo)
    # The tuned study in one process (below) refuses, before training, while its study is stale.
    refused = run("python", "-m", "pipeline", "tuned", check=False)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "the study is not up to date" in line and "run `dvc repro` first" in line
    assert not (repo / "sweeps").exists()

    run("dvc", "repro", "train@baseline")  # what the paths read: the data, the baseline's runs
    first = run("dvc", "repro", "sweep-stages/dvc.yaml")
    # One stage per (technique, strength); its seeds train together.
    assert running_stages(first.stdout) == {
        "rounds",  # the study's rounds: the tuned report's fixed-strength rows read them
        "sweep-dropout@0.3",
        "sweep-l2@0.01",
        "sweep-combined@0.3-0.1",  # DVC names a point of the joint grid by its strengths
        "sweep-report",
        "choose",
        "tuned-report",
    }
    # The rounds: seed 2 for each technique at every strength, and for the baseline.
    assert "round 1: 4 run(s) to train, 0 reused" in first.stderr
    joint = json.loads(
        (repo / "sweeps" / "combined" / "dropout=0.3,weight_decay=0.1" / "seed0.json").read_text()
    )
    assert joint["strength"] == [0.3, 0.1]
    knobs = joint["hyperparameters"]
    assert (knobs["dropout"], knobs["weight_decay"], knobs["optimizer"]) == (0.3, 0.1, "adamw")

    summary = json.loads((repo / "reports" / "sweep" / "summary.json").read_text())
    assert set(summary) == {"dropout", "l2"}
    base_runs = json.loads((repo / "metrics" / "baseline" / "runs.json").read_text())
    base = {r["seed"]: r["summary"]["best_val_loss"] for r in base_runs}
    points = {p["strength"]: p for p in summary["l2"]["points"]}
    assert set(points) == {0.0, 0.01}
    assert points[0.0]["best_val_loss"]["mean"] == pytest.approx(np.mean(list(base.values())))
    l2 = {
        seed: json.loads((repo / "sweeps" / "l2" / "0.01" / f"seed{seed}.json").read_text())
        for seed in (0, 1)
    }
    values = [l2[s]["summary"]["best_val_loss"] for s in (0, 1)]
    assert points[0.01]["best_val_loss"]["mean"] == pytest.approx(np.mean(values))
    ci = stats.ttest_rel(values, [base[0], base[1]]).confidence_interval(0.95)
    change = points[0.01]["change_best_val_loss"]
    assert (change["low"], change["high"]) == pytest.approx((ci.low, ci.high))
    assert l2[0]["hyperparameters"]["l2"] == 0.01 and l2[0]["hyperparameters"]["dropout"] == 0.0
    # The best strength, from the point files and the baseline's runs directly.
    l2_mean = np.mean(values)
    assert summary["l2"]["best_strength"] == (
        0.01 if l2_mean < np.mean(list(base.values())) else 0.0
    )
    assert "## l2" in (repo / "reports" / "sweep" / "sweep.md").read_text()
    assert (repo / "reports" / "sweep" / "strength_paths.png").stat().st_size > 10_000

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name(SWEEP["mlflow"]["experiment"])
    sweep_runs = client.search_runs([exp.experiment_id], "tags.kind = 'sweep'")
    assert sorted(r.info.run_name for r in sweep_runs) == [
        "baseline-seed2",
        "combined=0.3,0.1-seed0",
        "combined=0.3,0.1-seed1",
        "combined=0.3,0.1-seed2",
        "dropout=0.3-seed0",
        "dropout=0.3-seed1",
        "dropout=0.3-seed2",
        "l2=0.01-seed0",
        "l2=0.01-seed1",
        "l2=0.01-seed2",
    ]
    # The point files hold results; each point's MLflow run is named in logs/, not hashed.
    assert all("run_id" not in point for point in l2.values())
    logged = {
        json.loads((repo / "logs" / "sweeps" / "l2" / "0.01" / f"seed{seed}.json").read_text())[
            "run_id"
        ]
        for seed in (0, 1)
    }
    assert {r.info.run_id for r in sweep_runs if r.data.tags["sweep_technique"] == "l2"} == (
        logged
        | {
            json.loads((repo / "logs" / "tuned-rounds" / "l2" / "0.01" / "seed2.json").read_text())[
                "run_id"
            ]
        }
    )

    # One more strength: only its points (and the report) run; the rounds train its seed 2
    # and reuse the seeds they trained before.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["sweep"]["l2"].append(0.1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    again = run("dvc", "repro", "sweep-stages/dvc.yaml")
    assert running_stages(again.stdout) == {
        "sweep-l2@0.1",
        "sweep-report",
        "choose",
        "tuned-report",
    }
    assert "round 1: 1 run(s) to train, 4 reused" in again.stderr

    # The tuned study: per seed, l2's strength of lowest val loss, read from the point files
    # (seeds 0 and 1 under sweeps/, seed 2 under tuned-rounds/).
    def point_file(technique: str, strength: str, seed: int) -> Path:
        folder = "sweeps" if seed < 2 else "tuned-rounds"
        return repo / folder / technique / strength / f"seed{seed}.json"

    seeds = (0, 1, 2)
    point = {
        (strength, seed): json.loads(point_file("l2", strength, seed).read_text())["summary"]
        for strength in ("0.01", "0.1")
        for seed in seeds
    }
    best = {
        seed: min(("0.01", "0.1"), key=lambda s, seed=seed: point[s, seed]["best_val_loss"])
        for seed in seeds
    }
    with (repo / "reports" / "tuned" / "chosen.csv").open() as f:
        chosen = {(r["technique"], int(r["seed"])): r["strength"] for r in csv.DictReader(f)}
    assert chosen == {
        **{("dropout", seed): "0.3" for seed in seeds},  # its only strength
        **{("combined", seed): "0.3,0.1" for seed in seeds},  # its only point
        **{("l2", seed): best[seed] for seed in seeds},
    }
    # In MLflow, each point's run says whether its seed chose it.
    l2_runs = client.search_runs([exp.experiment_id], "tags.sweep_technique = 'l2'")
    assert {
        (r.data.tags["sweep_strength"], r.data.tags["seed"]): r.data.tags["chosen"] for r in l2_runs
    } == {
        (strength, str(seed)): str(float(strength) == float(best[seed])).lower()
        for strength in ("0.01", "0.1")
        for seed in seeds
    }
    # The experiment's view of the tuned study: the chosen runs, a row per technique.
    view = client.get_experiment(exp.experiment_id).tags[
        "mlflow.sharedViewState.tuned-by-technique"
    ]
    shown = client.search_runs(
        [exp.experiment_id], ui_view.read_envelope(view)["state"]["searchFilter"]
    )
    assert sorted((r.data.tags["sweep_technique"], r.data.tags["seed"]) for r in shown) == [
        (technique, str(seed)) for technique in ("combined", "dropout", "l2") for seed in seeds
    ]
    # ... judged on test against the baseline's runs, paired by seed (its seed 2: the rounds').
    tuned = json.loads((repo / "reports" / "tuned" / "summary.json").read_text())
    base_test = {r["seed"]: r["summary"]["test_loss"] for r in base_runs}
    base_test[2] = json.loads((repo / "tuned-rounds" / "baseline" / "seed2.json").read_text())[
        "summary"
    ]["test_loss"]
    change = np.mean([point[best[s], s]["test_loss"] - base_test[s] for s in seeds])
    assert tuned["l2"]["vs_baseline"]["test_loss"]["mean"] == pytest.approx(change)
    assert (tuned["l2"]["seeds"], tuned["l2"]["stopped"]) == (3, "budget spent")
    text = (repo / "reports" / "tuned" / "tuned.md").read_text()
    assert "| l2 |" in text and "Δ test loss gap" in text
    assert "l2 3 (budget spent)" in text and "| combined | (0.3, 0.1) ×3 |" in text

    # The same in one process: the stale point only (DVC says which), the rounds' seeds of the
    # others reused, all recorded as the stages would have made them.
    params["sweep"]["l2"].append(1.0)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    here = run("python", "-m", "pipeline", "tuned")
    assert "1 point(s) to train" in here.stderr
    assert "round 1: 1 run(s) to train, 5 reused" in here.stderr
    assert "sweep-stages/dvc.lock: the outputs recorded" in here.stdout
    assert (repo / "sweeps" / "l2" / "1.0" / "seed1.json").is_file()
    assert json.loads(run("dvc", "status", "sweep-stages/dvc.yaml", "--json").stdout) == {}


def test_a_bad_sweep_point_fails_in_one_line_before_training(tmp_path: Path) -> None:
    repo = scratch_repo(tmp_path / "repo", SWEEP)
    run = make_runner(repo)
    for args, expected in (
        (["l2", "0"], "sweep strength 0.0 for l2: Input should be greater than 0"),
        (["dropout", "1.5"], "sweep strength 1.5 for dropout"),
        (["shrinkage", "0.1"], "unknown sweep technique 'shrinkage'"),
        (["l2", "much"], "sweep strength 'much' is not a number"),
    ):
        out = run("python", "-m", "pipeline", "sweep-run", *args, "--seed", "0", check=False)
        assert out.returncode == 2, out.stderr
        [line] = out.stderr.strip().splitlines()
        assert line.startswith("error: ") and expected in line
    assert not (repo / "sweeps").exists() and not (repo / "mlflow.db").exists()
