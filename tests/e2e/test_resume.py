"""Interrupted trainings continued with `train --resume`: the same weights as an uninterrupted
run, every epoch logged once, and a checkpoint refused where continuing would be wrong."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.support.interrupts import (
    EPOCHS,
    LONG,
    PY,
    all_runs,
    client,
    interrupt_after,
    trained_uninterrupted,
    training_started,
)
from tests.support.repo import Runner

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("schedule", ["none", "one_cycle"])
def test_sigterm_kills_the_run_and_resume_matches_an_uninterrupted_run(
    tmp_path: Path, schedule: str
) -> None:
    """With a learning-rate schedule too: its state is in the checkpoint, so the resumed run
    goes on with the learning rate the uninterrupted one has (one_cycle: a new one each
    mini-batch, so any step off would show)."""
    params = json.loads(json.dumps(LONG))
    params["train"]["lr_schedule"] = schedule
    repo, run, process = training_started(tmp_path / "a", params, "dropout")
    output = interrupt_after(process, [f"dropout-seed0 epoch 5/{EPOCHS}"], signal.SIGTERM)
    assert process.returncode == 143, output
    assert "interrupted (SIGTERM)" in output
    [killed] = all_runs(repo)
    assert killed.info.status == "KILLED"
    # Nothing DVC could take for a finished output, no staging left behind.
    assert not (repo / "models" / "dropout").exists()
    assert not (repo / "metrics" / "dropout").exists()
    assert not list(repo.glob(".train-*"))
    assert (repo / "checkpoints" / "dropout" / "seed0.pt").is_file()

    run(PY, "-m", "pipeline", "train", "--variant", "dropout", "--resume")
    [resumed] = all_runs(repo)
    assert resumed.info.run_id == killed.info.run_id
    assert resumed.info.status == "FINISHED"
    steps = {m.step for m in client(repo).get_metric_history(resumed.info.run_id, "val_loss")}
    assert steps == set(range(1, EPOCHS + 1))
    lrs = client(repo).get_metric_history(resumed.info.run_id, "lr")
    assert sorted(m.step for m in lrs) == (list(range(1, EPOCHS + 1)) if schedule != "none" else [])
    assert not (repo / "checkpoints" / "dropout").exists(), "checkpoints go once outputs exist"

    # The same study, never interrupted, in another copy: the same weights, bit for bit.
    other = trained_uninterrupted(tmp_path / "b", params, "dropout")
    resumed_weights = load_file(repo / "models" / "dropout" / "seed0" / "model.safetensors")
    straight_weights = load_file(other / "models" / "dropout" / "seed0" / "model.safetensors")
    assert resumed_weights.keys() == straight_weights.keys()
    for key, tensor in resumed_weights.items():
        assert torch.equal(tensor, straight_weights[key]), key
    # The stage's outputs hold results only (no run id, no seconds): the same bytes.
    for name in ("runs.json", "history.csv", "summary.json", "curves.csv"):
        ours = (repo / "metrics" / "dropout" / name).read_bytes()
        assert ours == (other / "metrics" / "dropout" / name).read_bytes(), name


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_after_resume_every_epoch_is_logged_exactly_once(tmp_path: Path, sig: int) -> None:
    """Checkpoints every 5 epochs, an interrupt past epoch 8: the epochs after the checkpoint
    were logged (SIGTERM) or were still queued (SIGKILL) when it came. After `--resume` the
    run holds one value per epoch, each the value of the history the stage wrote."""
    params = json.loads(json.dumps(LONG))
    params["train"]["checkpoint_every"] = 5
    repo, run, process = training_started(tmp_path / "a", params, "dropout")
    interrupt_after(process, [f"dropout-seed0 epoch 8/{EPOCHS}"], sig)
    run(PY, "-m", "pipeline", "train", "--variant", "dropout", "--resume")
    [resumed] = all_runs(repo)
    assert resumed.info.status == "FINISHED" and "failure" not in resumed.data.tags
    with open(repo / "metrics" / "dropout" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key in ("val_loss", "train_loss", "loss_gap"):
        logged = client(repo).get_metric_history(resumed.info.run_id, key)
        assert sorted(m.step for m in logged) == list(range(1, EPOCHS + 1)), key
        by_step = {m.step: m.value for m in logged}
        assert all(by_step[int(r["epoch"])] == float(r[key]) for r in rows), key


def test_a_signal_while_the_model_is_logged_leaves_the_seed_done(tmp_path: Path) -> None:
    """SIGTERM once the last epoch is out lands while the finished run logs its summary,
    weights and model (about a second): the run ends FINISHED and the seed is recorded done,
    so `--resume` neither opens the run again nor logs a second model."""
    repo, run, process = training_started(tmp_path / "a", LONG, "dropout")
    output = interrupt_after(process, [f"dropout-seed0 epoch {EPOCHS}/{EPOCHS}"], signal.SIGTERM)
    assert process.returncode == 143, output
    [ended] = all_runs(repo)
    assert ended.info.status == "FINISHED"
    run(PY, "-m", "pipeline", "train", "--variant", "dropout", "--resume")
    [resumed] = all_runs(repo)
    assert resumed.info.run_id == ended.info.run_id and resumed.info.end_time == ended.info.end_time
    models = client(repo).search_logged_models([resumed.info.experiment_id])
    assert len(models) == 1
    logged = client(repo).get_metric_history(resumed.info.run_id, "val_loss")
    assert sorted(m.step for m in logged) == list(range(1, EPOCHS + 1))
    assert (repo / "models" / "dropout" / "seed0" / "model.safetensors").is_file()


def test_resume_on_data_prepared_otherwise_is_refused(tmp_path: Path) -> None:
    """Re-preparing the data (another normalization: the same settings the runs log, other
    numbers) between an interrupt and `--resume` would continue a run on another dataset."""
    repo, run, process = training_started(tmp_path / "a", LONG, "dropout")
    interrupt_after(process, [f"dropout-seed0 epoch 5/{EPOCHS}"], signal.SIGTERM)
    params = json.loads(json.dumps(LONG))
    params["data"]["normalize"] = "per_feature"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(PY, "-m", "pipeline", "prepare")
    resumed = run(PY, "-m", "pipeline", "train", "--variant", "dropout", "--resume", check=False)
    assert resumed.returncode == 2, resumed.stderr
    [line] = resumed.stderr.strip().splitlines()
    assert "seed0.pt was made with other settings, data or device" in line
    [killed] = all_runs(repo)
    assert killed.info.status == "KILLED"


def test_resume_after_the_users_network_was_edited_is_refused(tmp_path: Path) -> None:
    """The specs name a network of the user's by its function only: an edit to its module
    between an interrupt and `--resume` (here ReLU -> GELU, the same shapes) would train the
    first epochs with one network and the rest with another."""
    params = json.loads(json.dumps(LONG))
    params["model"] = {"network": "networks.example:build"}
    repo, run, process = training_started(tmp_path / "a", params, "l2")
    interrupt_after(process, [f"l2-seed0 epoch 5/{EPOCHS}"], signal.SIGTERM)
    source = repo / "networks" / "example.py"
    assert source.read_text().count("nn.ReLU()") == 2
    source.write_text(source.read_text().replace("nn.ReLU()", "nn.GELU()"))
    resumed = run(PY, "-m", "pipeline", "train", "--variant", "l2", "--resume", check=False)
    assert resumed.returncode == 2, resumed.stderr
    [line] = resumed.stderr.strip().splitlines()
    assert "seed0.pt was made with other settings, data or device" in line


def test_sigterm_stops_every_seed_of_the_stack(tmp_path: Path) -> None:
    """The seeds train as one stack. A SIGTERM sent to the stage's process (as a scheduler
    does) stops them all: each run ends KILLED, nothing is written, and `--resume` continues
    each seed in its own run to the weights an uninterrupted stage gets."""
    params = json.loads(json.dumps(LONG))
    params["train"]["seeds"] = [0, 1]
    repo, run, process = training_started(tmp_path / "a", params, "dropout")
    markers = [f"dropout-seed{s} epoch 5/{EPOCHS}" for s in (0, 1)]
    output = interrupt_after(process, markers, signal.SIGTERM, group=False)  # the parent only
    assert process.returncode == 143, output
    killed = all_runs(repo)
    assert sorted(r.info.run_name for r in killed) == ["dropout-seed0", "dropout-seed1"]
    assert {r.info.status for r in killed} == {"KILLED"}
    assert not (repo / "models" / "dropout").exists() and not list(repo.glob(".train-*"))

    run(PY, "-m", "pipeline", "train", "--variant", "dropout", "--resume")
    resumed = all_runs(repo)
    assert {r.info.run_id for r in resumed} == {r.info.run_id for r in killed}
    assert {r.info.status for r in resumed} == {"FINISHED"}

    other = trained_uninterrupted(tmp_path / "b", params, "dropout")
    for seed in (0, 1):
        ours = load_file(repo / "models" / "dropout" / f"seed{seed}" / "model.safetensors")
        theirs = load_file(other / "models" / "dropout" / f"seed{seed}" / "model.safetensors")
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), seed


class Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_planted_pickle_checkpoint_is_refused(
    tiny_repo: Path, run_in: Runner, tmp_path: Path
) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    marker = tmp_path / "code-ran"
    folder = tiny_repo / "checkpoints" / "baseline"
    folder.mkdir(parents=True)
    torch.save({"fingerprint": "x", "evil": Payload(marker)}, folder / "seed0.pt")
    result = run_in(PY, "-m", "pipeline", "train", "--variant", "baseline", "--resume", check=False)
    assert result.returncode == 2
    assert "seed0.pt: refused" in result.stderr
    assert not marker.exists(), "the planted payload was unpickled"
    assert all_runs(tiny_repo) == []
