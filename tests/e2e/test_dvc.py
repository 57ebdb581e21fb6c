"""End to end: the real `dvc repro` / `dvc exp run` on tiny settings, checked in MLflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.data.prepared import load_pool
from pipeline.data.splits import draw
from tests.support.interrupts import EPOCHS, LONG, training_started
from tests.support.repo import TINY_PARAMS, command_env, make_runner, scratch_repo
from tests.support.servers import free_port, get_json
from tests.support.tracking import client_for, training_runs

pytestmark = pytest.mark.e2e

N_TRAIN_RUNS = len(TINY_PARAMS["variants"]) * len(TINY_PARAMS["train"]["seeds"])


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `dvc repro dvc.yaml` of the tiny study, run by `python -m pipeline study --executor
    dvc`, shared by the tests of this module."""
    repo = scratch_repo(tmp_path_factory.mktemp("dvc") / "repo", TINY_PARAMS)
    make_runner(repo)("python", "-m", "pipeline", "study", "--executor", "dvc")
    return repo


@pytest.fixture
def committed_study(reproduced: Path, tmp_path: Path) -> Path:
    """A copy of the reproduced study with its outputs committed, as `make study` leaves a
    clone: experiments start from it, and DVC has every stage they do not change cached."""
    repo = tmp_path / "study"
    # Not its MLflow store: a clone has none, and the store names the repository it is in.
    shutil.copytree(reproduced, repo, symlinks=True, ignore=shutil.ignore_patterns("mlflow.db*"))
    shutil.rmtree(repo / "mlruns")
    run = make_runner(repo)
    run("git", "checkout", "--", "params.yaml")  # an edit of another test, not reproduced
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "the study's outputs")
    return repo


def experiment_runs(repo: Path, name: str) -> list:
    return [r for r in training_runs(repo) if r.data.tags.get("dvc_exp_name") == name]


def local_path(uri: str) -> str:
    return uri.removeprefix("file://")


def test_study_with_the_dvc_executor_runs_the_stages(reproduced: Path) -> None:
    runs = training_runs(reproduced)
    assert {r.data.tags["dvc_stage"] for r in runs} == {
        f"train@{v}" for v in TINY_PARAMS["variants"]
    }
    assert (reproduced / "reports" / "gap_report.md").is_file()
    assert (reproduced / "dvc.lock").is_file()
    # Up to date: DVC skips every stage, so nothing trains again.
    again = make_runner(reproduced)("python", "-m", "pipeline", "study", "--executor", "dvc")
    assert "Data and pipelines are up to date." in again.stdout + again.stderr
    assert len(training_runs(reproduced)) == N_TRAIN_RUNS


def test_repro_logs_every_variant_and_seed(reproduced: Path) -> None:
    client = client_for(reproduced)
    runs = training_runs(reproduced)
    assert len(runs) == N_TRAIN_RUNS
    pairs = {(r.data.tags["variant"], r.data.tags["seed"]) for r in runs}
    assert pairs == {
        (v, str(s)) for v in TINY_PARAMS["variants"] for s in TINY_PARAMS["train"]["seeds"]
    }
    param_keys = {frozenset(r.data.params) for r in runs}
    assert len(param_keys) == 1, "every run must log the same parameter names"
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{run.data.tags['variant']}-seed{run.data.tags['seed']}"
        assert run.data.tags["dataset"] == "digits"
        assert run.data.tags["dvc_stage"] == f"train@{run.data.tags['variant']}"
        assert len(run.data.tags["git_commit"]) == 40
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == [1, 2, 3, 4]
        for key in (
            "train_loss",
            "train_loss_running",
            "penalty",
            "loss_gap",
            "accuracy_gap",
            "epoch_seconds",
            "best_val_loss",
            "test_accuracy",
            "loss_gap_best",
            "loss_gap_last",
            "near_zero_fraction",
            "weight_norm",
        ):
            assert key in run.data.metrics, key
        # Artifacts live under the repository's mlruns/, not anywhere else.
        assert local_path(run.info.artifact_uri).startswith(str(reproduced / "mlruns"))
    l2_runs = [r for r in runs if r.data.tags["variant"] == "l2"]
    assert all(float(r.data.params["l2"]) == 0.001 for r in l2_runs)
    assert all(r.data.metrics["penalty"] > 0 for r in l2_runs)


def test_the_logged_model_serves_raw_inputs_with_the_runs_test_accuracy(
    reproduced: Path, tmp_path: Path
) -> None:
    """`mlflow models serve`, as the README has it, given the raw test split of the run's seed
    (the pool's rows, as the data gives them), answers each with its class and the class
    probabilities, and scores the test accuracy the run logged. The model holds no pickle
    and hands back the network; the files of models/ (weights, architecture, normalisation)
    score the same."""
    import mlflow.pyfunc
    from safetensors.torch import load_file

    from pipeline.training.model import Architecture, build_mlp

    client = client_for(reproduced)
    run = next(r for r in training_runs(reproduced) if r.data.tags["variant"] == "dropout")
    [model] = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )
    mlflow.set_tracking_uri(f"sqlite:///{reproduced / 'mlflow.db'}")
    model_dir = Path(mlflow.artifacts.download_artifacts(model.model_uri))
    kinds = {p.suffix for p in model_dir.rglob("*") if p.is_file()}
    assert kinds <= {"", ".yaml", ".txt", ".json", ".py", ".safetensors"}, kinds  # no pickle
    network = mlflow.pyfunc.load_model(model.model_uri).unwrap_python_model().network
    assert network.eval() is network and not network.training

    seed = int(run.data.tags["seed"])
    pool = load_pool(reproduced / "data" / "prepared")
    drawn = draw(pool, seed)
    raw = pool.x[drawn.indices["test"]]
    # As the README serves it, in the repository (its store is MLflow's default there).
    port = free_port()
    serve = ["mlflow", "models", "serve", "-m", model.model_uri, "--env-manager", "local"]
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen(
            [*serve, "-p", str(port)],
            cwd=reproduced,
            env=command_env(),
            stdout=log,
            stderr=log,
            start_new_session=True,  # the server it starts goes with it
        )
    try:
        wait_until_served(f"http://127.0.0.1:{port}/ping", server, tmp_path / "serve.log")
        answers = get_json(f"http://127.0.0.1:{port}/invocations", {"inputs": raw.tolist()})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    answers = answers["predictions"]
    classes = np.array([a["class"] for a in answers])
    probabilities = np.array([a["probabilities"] for a in answers])
    assert probabilities.shape == (len(raw), pool.n_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(classes, probabilities.argmax(axis=1))
    logged = run.data.metrics["test_accuracy"]
    assert float((classes == drawn.test.y).mean()) == pytest.approx(logged, abs=1e-6)

    # models/<variant>/seed<k>/, loaded without MLflow: the same score on the same raw rows.
    folder = reproduced / "models" / "dropout" / f"seed{seed}"
    arch = Architecture.from_json(
        json.loads((folder / "architecture.json").read_text())["architecture"]
    )
    plain = build_mlp(arch)
    plain.load_state_dict(load_file(folder / "model.safetensors"))
    stats = load_file(folder / "normalization.safetensors")
    with torch.no_grad():
        logits = plain.eval()((torch.from_numpy(raw) - stats["mean"]) / stats["std"])
    assert float((logits.argmax(1).numpy() == drawn.test.y).mean()) == pytest.approx(
        logged, abs=1e-6
    )


def wait_until_served(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)


def test_report_outputs_and_mlflow_run(reproduced: Path) -> None:
    summary = json.loads((reproduced / "reports" / "summary.json").read_text())
    assert set(summary["variants"]) == set(TINY_PARAMS["variants"])
    assert "vs_baseline" in summary["variants"]["l2"]
    assert "vs_baseline" not in summary["variants"]["baseline"]
    report = (reproduced / "reports" / "gap_report.md").read_text()
    for name in TINY_PARAMS["variants"]:
        assert f"| {name} |" in report
    for figure in ("learning_curves", "loss_gap", "final_gap", "weight_magnitudes"):
        assert (reproduced / "reports" / "figures" / f"{figure}.png").stat().st_size > 10_000
    # The report's numbers come from the train stages' files: recompute one independently.
    runs = json.loads((reproduced / "metrics" / "l2" / "runs.json").read_text())
    gaps = [r["summary"]["loss_gap_last"] for r in runs]
    assert summary["variants"]["l2"]["loss_gap_last"]["mean"] == pytest.approx(np.mean(gaps))

    client = client_for(reproduced)
    exp = client.get_experiment_by_name("tiny-study")
    reports = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'report'")
    assert len(reports) == 1
    artifacts = {a.path for a in client.list_artifacts(reports[0].info.run_id)}
    assert {"gap_report.md", "summary.json", "figures"} <= artifacts
    # Each training run carries its own per-epoch history as CSV.
    run = training_runs(reproduced)[0]
    history = client.download_artifacts(run.info.run_id, "history.csv", str(reproduced / ".."))
    rows = Path(history).read_text().splitlines()
    assert rows[0].startswith("variant,seed,epoch,train_loss")
    assert len(rows) == 1 + TINY_PARAMS["train"]["epochs"]


def test_dvc_metrics_plots_and_up_to_date(reproduced: Path) -> None:
    run = make_runner(reproduced)
    again = run("dvc", "repro")
    assert "Data and pipelines are up to date." in again.stdout
    # The declared metrics are the report's one number per variant, its mean gap, no more.
    shown = json.loads(run("dvc", "metrics", "show", "--json").stdout)
    [files] = [rev["data"] for rev in shown.values()]
    assert set(files) == {"reports/metrics.json"}
    headline = files["reports/metrics.json"]["data"]
    summary = json.loads((reproduced / "reports" / "summary.json").read_text())["variants"]
    assert headline == {"gap": {name: summary[name]["loss_gap_last"]["mean"] for name in summary}}
    assert set(headline["gap"]) == set(TINY_PARAMS["variants"])
    plots = run("dvc", "plots", "show", "--json")
    assert "metrics/baseline/curves.csv" in plots.stdout
    assert "learning_curves.png" in plots.stdout
    # Each seed's own curves, one line per seed, where `dvc plots` and its VS Code view draw.
    [per_seed] = json.loads(plots.stdout)["data"]["metrics/baseline/history.csv"]
    spec = per_seed["content"]
    assert spec["encoding"]["detail"]["field"] == "seed"
    rows = spec["data"]["values"]
    seeds = TINY_PARAMS["train"]["seeds"]
    assert sorted({int(r["seed"]) for r in rows}) == seeds
    assert len(rows) == len(seeds) * TINY_PARAMS["train"]["epochs"]


def test_editing_one_variant_retrains_only_it(reproduced: Path) -> None:
    run = make_runner(reproduced)
    params = yaml.safe_load((reproduced / "params.yaml").read_text())
    params["variants"]["l2"]["l2"] = 0.002
    (reproduced / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run("dvc", "status", "dvc.yaml", "--json").stdout)
    assert set(status) == {"train@l2", "rounds", "report"}


def test_experiments_run_queued_and_side_by_side(committed_study: Path) -> None:
    """`dvc exp run --queue` then `dvc queue start`: the experiment runs in a copy under
    .dvc/tmp/exps and its runs land in the root store. Then `dvc exp run -S` in the
    workspace, and the two experiments compared by `dvc exp show`, `dvc plots diff` and
    `dvc exp diff`. Each retrains only the variant it changed."""
    run = make_runner(committed_study)
    run("dvc", "exp", "run", "--queue", "-n", "queued-l2", "-S", "variants.l2.l2=0.01")
    run("dvc", "queue", "start")
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        status = run("dvc", "queue", "status").stdout
        if "Success" in status or "Failed" in status:
            break
        time.sleep(3)
    assert "Success" in status, (
        status + run("dvc", "queue", "logs", "queued-l2", check=False).stdout
    )
    queued = experiment_runs(committed_study, "queued-l2")
    assert sorted((r.data.tags["variant"], r.data.tags["seed"]) for r in queued) == [
        ("l2", "0"),
        ("l2", "1"),
    ]
    root_mlruns = str(committed_study / "mlruns")
    for r in queued:
        assert local_path(r.info.artifact_uri).startswith(root_mlruns), r.info.artifact_uri
        assert r.info.status == "FINISHED"
    assert all(float(r.data.params["l2"]) == 0.01 for r in queued)
    # The artifacts outlive the temporary copy: each run's logged model is in the root's store.
    client = client_for(committed_study)
    for r in queued:
        [model] = client.search_logged_models(
            experiment_ids=[r.info.experiment_id],
            filter_string=f"source_run_id = '{r.info.run_id}'",
        )
        stored = Path(local_path(model.artifact_location))
        assert str(stored).startswith(root_mlruns) and any(stored.rglob("model.safetensors"))

    run("dvc", "exp", "run", "-n", "strong-dropout", "-S", "variants.dropout.dropout=0.3")
    runs = experiment_runs(committed_study, "strong-dropout")
    assert sorted((r.data.tags["variant"], r.data.tags["seed"]) for r in runs) == [
        ("dropout", "0"),
        ("dropout", "1"),
    ]
    assert all(r.data.params["dropout"] == "0.3" for r in runs)
    shown = run("dvc", "exp", "show", "--json").stdout
    assert "strong-dropout" in shown and "queued-l2" in shown
    # The two experiments' dropout curves, drawn together by `dvc plots diff`: the queued
    # one kept the committed curves, the other retrained them.
    plots = json.loads(run("dvc", "plots", "diff", "strong-dropout", "queued-l2", "--json").stdout)
    [curves] = plots["data"]["metrics/dropout/curves.csv"]
    assert set(curves["revisions"]) == {"strong-dropout", "queued-l2"}
    values = curves["content"]["data"]["values"]
    epochs = TINY_PARAMS["train"]["epochs"]
    by_rev = {
        rev: [(v["epoch"], v["val_loss"]) for v in values if v["rev"] == rev]
        for rev in ("strong-dropout", "queued-l2")
    }
    for rows in by_rev.values():
        assert sorted({int(epoch) for epoch, _ in rows}) == list(range(1, epochs + 1))
    assert by_rev["strong-dropout"] != by_rev["queued-l2"]
    # ... and their numbers, metric by metric, by `dvc exp diff`.
    diff = run("dvc", "exp", "diff", "strong-dropout", "queued-l2", "--json").stdout
    changed = json.loads(diff)["metrics"]["reports/metrics.json"]
    assert {"gap.dropout", "gap.l2"} <= set(changed)

    # What a DVC user who tried a variation reads in a terminal of 120 columns: the
    # experiment, the parameter it changed and the gap of the variant it retrained, in full
    # (DVC may fold the dependency hashes, the last columns, into an ellipsis). A queued
    # experiment adds DVC's State and Executor columns, 21 more: not this table.
    run("dvc", "exp", "remove", "queued-l2")
    table = run("dvc", "exp", "show", "--only-changed", "--no-pager", COLUMNS="120").stdout
    lines = table.splitlines()
    assert max(map(len, lines)) <= 120, table
    [header] = [line for line in lines if "Experiment" in line]
    cells = header.split()
    assert {"variants.dropout.dropout", "gap.dropout"} <= set(cells), table
    assert not any(cell.endswith("…") and len(cell) > 1 for cell in cells), table
    [row] = [line.split() for line in lines if "[strong-dropout]" in line]
    gap = json.loads((committed_study / "reports" / "metrics.json").read_text())["gap"]["dropout"]
    numbers = [float(cell) for cell in row if re.fullmatch(r"-?\d+\.\d+", cell)]
    assert 0.3 in numbers and any(abs(n - gap) < 1e-4 for n in numbers), table


def write_pool(path: Path, seed: int) -> None:
    """120 examples of 2 Gaussian classes in 6 features."""
    rng = np.random.default_rng(seed)
    y = np.arange(120) % 2
    np.savez(path, x=rng.normal(size=(120, 6)) + y[:, None], y=y)


def test_a_user_npz_regenerated_in_place_is_prepared_again(tmp_path: Path) -> None:
    params = json.loads(json.dumps(TINY_PARAMS))
    params["data"] = {"dataset": "npz", "path": "data/raw/pool.npz"}
    repo = scratch_repo(tmp_path / "repo", params)
    run = make_runner(repo)
    write_pool(repo / "data" / "raw" / "pool.npz", seed=0)
    first = run("dvc", "repro", "prepare")
    assert "Running stage 'prepare'" in first.stdout and "warning" not in first.stderr
    before = (repo / "data" / "prepared" / "pool.npz").read_bytes()
    assert "up to date" in run("dvc", "status", "prepare").stdout
    write_pool(repo / "data" / "raw" / "pool.npz", seed=1)  # the same path, other numbers
    again = run("dvc", "repro", "prepare")
    assert "Running stage 'prepare'" in again.stdout
    assert (repo / "data" / "prepared" / "pool.npz").read_bytes() != before


def test_a_data_file_outside_data_raw_is_prepared_with_a_warning(tmp_path: Path) -> None:
    params = json.loads(json.dumps(TINY_PARAMS))
    params["data"] = {"dataset": "npz", "path": "pool.npz"}
    repo = scratch_repo(tmp_path / "repo", params)
    write_pool(repo / "pool.npz", seed=0)
    done = make_runner(repo)("python", "-m", "pipeline", "prepare")
    assert done.stderr.strip().splitlines() == [
        "warning: pool.npz is outside data/raw/, the folder dvc.yaml declares as prepare's "
        "input: DVC will not rerun prepare when it changes"
    ]
    assert (repo / "data" / "prepared" / "meta.json").is_file()


def test_a_fresh_clone_logs_the_committed_report_to_mlflow(
    reproduced: Path, tmp_path: Path
) -> None:
    """On a clone of a repository with its outputs committed, `dvc repro` retrains (its cache
    is empty) to the same bytes, so it skips the report stage and with it the report's MLflow
    run and view; `next-steps` (the end of `make study`) logs them, once."""
    origin = tmp_path / "origin"
    shutil.copytree(reproduced, origin, symlinks=True)  # the study reproduced, as committed
    run = make_runner(origin)
    run("git", "checkout", "--", "params.yaml")  # an edit of another test, not reproduced
    assert json.loads(run("dvc", "status", "dvc.yaml", "--json").stdout) == {}
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "the study's outputs")
    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone))
    in_clone = make_runner(clone)
    repro = in_clone("dvc", "repro")
    assert "Stage 'report' didn't change, skipping" in repro.stdout
    client = client_for(clone)
    experiment = client.get_experiment_by_name("tiny-study")

    def report_runs() -> list:
        return client.search_runs([experiment.experiment_id], "tags.kind = 'report'")

    assert report_runs() == []
    for _ in range(2):
        steps = in_clone("python", "-m", "pipeline", "next-steps")
        assert "viewStateShareKey=by-variant" in steps.stdout, steps.stdout
    [report] = report_runs()  # logged by the first, not again by the second
    assert report.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(report.info.run_id)} >= {"gap_report.md"}
    tags = client.get_experiment(experiment.experiment_id).tags
    assert "mlflow.sharedViewState.by-variant" in tags


def test_a_variants_per_seed_curves_grow_in_its_plot_file_while_it_trains(
    tmp_path: Path,
) -> None:
    """metrics/<variant>/history.csv, the plot `dvc plots show` and DVC's VS Code extension
    draw a line per seed from, gets each epoch as it ends, not only at the stage's end; the
    finished stage's file starts with the same rows."""
    params = json.loads(json.dumps(LONG))
    params["train"]["checkpoint_every"] = 0
    repo, _, process = training_started(tmp_path, params, "dropout")
    assert process.stdout is not None
    for line in process.stdout:
        if f"dropout-seed0 epoch 10/{EPOCHS}" in line:  # epochs 1 to 9 are written by now
            break
    history = repo / "metrics" / "dropout" / "history.csv"
    header, *live = history.read_text().splitlines()
    assert header.startswith("variant,seed,epoch,train_loss")
    assert 9 <= len(live) < EPOCHS
    process.communicate(timeout=300)
    assert process.returncode == 0
    _, *final = history.read_text().splitlines()
    assert len(final) == EPOCHS
    assert [[float(x) for x in row.split(",")[1:]] for row in live] == [
        [float(x) for x in row.split(",")[1:]] for row in final[: len(live)]
    ]
