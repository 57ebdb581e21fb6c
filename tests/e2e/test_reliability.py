"""Failure behaviour: a killed stage's runs ended by the next, interrupts under DVC, divergence,
concurrent writers, the same bytes twice, the UI bound to loopback. Resume: test_resume.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support.interrupts import (
    EPOCHS,
    LONG,
    PY,
    all_runs,
    client,
    interrupt_after,
    start,
    training_started,
)
from tests.support.repo import TINY_PARAMS, Runner, make_runner, scratch_repo
from tests.support.servers import free_port, job_runner_processes, wait_for_health

pytestmark = pytest.mark.e2e


def test_a_run_whose_process_was_killed_is_ended_by_the_next_training(tmp_path: Path) -> None:
    """SIGKILL to a stage that trains in its own process, before its first checkpoint: its
    run stays RUNNING, with nothing left to end it. The next training of the variant on this
    host ends it KILLED (`failure=process died`), so no run stays RUNNING."""
    params = json.loads(json.dumps(LONG))
    params["train"]["checkpoint_every"] = 0
    repo, run, process = training_started(tmp_path / "a", params, "dropout")
    interrupt_after(process, [f"dropout-seed0 epoch 5/{EPOCHS}"], signal.SIGKILL)
    [orphan] = all_runs(repo)
    assert orphan.info.status == "RUNNING"
    again = run(PY, "-m", "pipeline", "train", "--variant", "dropout")
    assert "dropout-seed0: its process had died with the run open" in again.stdout
    ended = client(repo).get_run(orphan.info.run_id)
    assert ended.info.status == "KILLED" and ended.data.tags["failure"] == "process died"
    assert sorted(r.info.status for r in all_runs(repo)) == ["FINISHED", "KILLED"]


def test_a_killed_stack_leaves_its_runs_to_the_next_training(tmp_path: Path) -> None:
    """SIGKILL (or the out-of-memory killer) to a stage training a stack of two seeds: it can
    clean up nothing, so both runs stay RUNNING; the next training of the variant ends both
    KILLED, tagged, before it starts its own."""
    params = json.loads(json.dumps(LONG))
    params["train"]["seeds"] = [0, 1]
    repo, run, process = training_started(tmp_path / "a", params, "dropout")
    markers = [f"dropout-seed{s} epoch 5/{EPOCHS}" for s in (0, 1)]
    interrupt_after(process, markers, signal.SIGKILL, group=False)
    orphans = all_runs(repo)
    assert {r.info.status for r in orphans} == {"RUNNING"} and len(orphans) == 2
    again = run(PY, "-m", "pipeline", "train", "--variant", "dropout")
    for seed in (0, 1):
        assert f"dropout-seed{seed}: its process had died with the run open" in again.stdout
    for orphan in orphans:
        ended = client(repo).get_run(orphan.info.run_id)
        assert ended.info.status == "KILLED" and ended.data.tags["failure"] == "process died"


def test_ctrl_c_under_dvc_repro_reruns_exactly_the_interrupted_stage(tmp_path: Path) -> None:
    params = json.loads(json.dumps(LONG))
    params["train"]["seeds"] = [0]
    # The baseline, then l2: the last variant trained, interrupted.
    params["variants"] = {"baseline": {}, "l2": {"l2": 0.002}}
    repo = scratch_repo(tmp_path / "repo", params)
    process = start(repo, "dvc", "repro")
    output = interrupt_after(process, [f"l2-seed0 epoch 5/{EPOCHS}"], signal.SIGINT)
    assert process.returncode != 0, output
    [l2] = [r for r in all_runs(repo) if r.data.tags.get("variant") == "l2"]
    assert l2.info.status == "KILLED"
    status = json.loads(make_runner(repo)("dvc", "status", "dvc.yaml", "--json").stdout)
    assert set(status) == {"train@l2", "rounds", "report"}, status

    again = make_runner(repo)("dvc", "repro").stdout
    assert "Running stage 'train@l2'" in again
    assert "Stage 'train@baseline' didn't change, skipping" in again


def processes_in(folder: Path) -> list[str]:
    """The command lines of the processes working in `folder`."""
    found = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.info["cwd"] and Path(process.info["cwd"]).is_relative_to(folder):
                found.append(" ".join(process.info["cmdline"] or []))
    return found


def test_sigterm_to_study_under_dvc_stops_the_whole_tree(tmp_path: Path) -> None:
    """`study --executor dvc` runs `dvc repro`, which runs a train stage: a SIGTERM to the
    study's process alone (as a scheduler sends it) stops all three, the stage's run ends
    KILLED, and DVC's lock is released: the next `dvc repro` runs."""
    params = json.loads(json.dumps(LONG))
    params["variants"] = {"baseline": {}}  # what the next repro trains
    repo = scratch_repo(tmp_path / "repo", params)
    process = start(repo, PY, "-m", "pipeline", "study", "--executor", "dvc")
    output = interrupt_after(process, [f"epoch 5/{EPOCHS}"], signal.SIGTERM, group=False)
    assert processes_in(repo) == []
    statuses = [r.info.status for r in all_runs(repo)]
    assert "KILLED" in statuses and "RUNNING" not in statuses, statuses
    assert process.returncode == 143, output
    assert "interrupted (SIGTERM): `dvc repro` and its stage have stopped" in output
    again = make_runner(repo)("dvc", "repro")
    assert again.returncode == 0 and (repo / "reports" / "gap_report.md").is_file()


def test_divergence_fails_the_run_and_keeps_finished_results(
    tiny_repo: Path, run_in: Runner
) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    run_in(PY, "-m", "pipeline", "train", "--variant", "baseline")
    # The study's own l2 stage (no override) at an absurd learning rate.
    params = json.loads(json.dumps(TINY_PARAMS))
    params["variants"]["l2"] |= {"optimizer": "sgd"}
    params["train"]["lr"] = 1e6
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_in(PY, "-m", "pipeline", "train", "--variant", "l2", check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2 run(s) diverged" in errors[0], result.stderr
    assert "l2-seed0: training diverged at epoch" in errors[0]
    assert "l2-seed1: training diverged at epoch" in errors[0]
    assert "nothing written to models/ or metrics/" in errors[0]
    # Each seed is an experiment of its own: each ends FAILED with its own reason, none KILLED.
    l2 = [r for r in all_runs(tiny_repo) if r.data.tags["variant"] == "l2"]
    assert sorted(r.info.run_name for r in l2) == ["l2-seed0", "l2-seed1"]
    for run in l2:
        assert run.info.status == "FAILED", run.info.run_name
        assert run.data.tags["failure"] == "diverged"
        assert int(run.data.tags["failure_epoch"]) >= 1
        assert "not finite" in run.data.tags["failure_reason"]
    assert not (tiny_repo / "models" / "l2").exists()
    assert not (tiny_repo / "metrics" / "l2").exists()
    finished = [r for r in all_runs(tiny_repo) if r.data.tags["variant"] == "baseline"]
    assert {r.info.status for r in finished} == {"FINISHED"}
    assert (tiny_repo / "models" / "baseline" / "seed0" / "model.safetensors").is_file()


def test_four_concurrent_trainings_share_one_sqlite_store(tiny_repo: Path, run_in: Runner) -> None:
    run_in(PY, "-m", "pipeline", "prepare")
    jobs = [("baseline", "0"), ("baseline", "1"), ("dropout", "0"), ("l2", "0")]
    processes = [
        start(tiny_repo, PY, "-m", "pipeline", "train", "--variant", v, "--seed", s)
        for v, s in jobs
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    runs = all_runs(tiny_repo)
    assert sorted((r.data.tags["variant"], r.data.tags["seed"]) for r in runs) == sorted(jobs)
    epochs = TINY_PARAMS["train"]["epochs"]
    for r in runs:
        assert r.info.status == "FINISHED"
        for key in ("train_loss", "val_loss", "loss_gap", "penalty"):
            history = client(tiny_repo).get_metric_history(r.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(1, epochs + 1))
        assert "test_accuracy" in r.data.metrics


def test_ui_binds_to_loopback_with_one_worker_and_no_job_runner(tiny_repo: Path) -> None:
    """`make ui` is for one person on a laptop: bound to 127.0.0.1 only, one request worker
    and none of MLflow's GenAI job runner (by default 4 workers and 8 job processes)."""
    port = free_port()
    process = start(tiny_repo, PY, "-m", "pipeline", "ui", "--port", str(port))
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
        assert job_runner_processes(process.pid) == []
        # `mlflow ui` and the one server process it starts, which answers the requests itself
        tree = [p.cmdline() for p in psutil.Process(process.pid).children(recursive=True)]
        assert len(tree) == 2 and tree[1][1:3] == ["-m", "uvicorn"], tree
        listening = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for row in Path(table).read_text().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.rsplit(":", 1)
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    listening.add(address)
        assert listening == {"0100007F"}, listening  # 127.0.0.1, and nothing else
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_same_seed_twice_gives_identical_outputs(tiny_repo: Path, run_in: Runner) -> None:
    """What DVC hashes holds results only: training the same stage again gives the same bytes
    (the runs' ids and seconds, which differ, go to logs/), so dvc.lock does not change."""
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    params["mlflow"]["log_model"] = False
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run_in(PY, "-m", "pipeline", "prepare")
    outputs, logs = [], []
    for _ in range(2):
        run_in(PY, "-m", "pipeline", "train", "--variant", "dropout")
        files = sorted((tiny_repo / "metrics" / "dropout").iterdir())
        files += sorted((tiny_repo / "models" / "dropout").rglob("*.*"))
        outputs.append({f.relative_to(tiny_repo): f.read_bytes() for f in files})
        logs.append(json.loads((tiny_repo / "logs" / "train" / "dropout.json").read_text()))
    # metrics/: curves, history, runs, summary; models/: weights, architecture and
    # normalisation for each seed
    assert len(outputs[0]) == 4 + 3 * len(params["train"]["seeds"])
    assert outputs[0] == outputs[1]
    runs = all_runs(tiny_repo)
    assert len(runs) == 4
    # Each seed's run id and seconds are in the log, one MLflow run per training.
    for log in logs:
        assert [entry["run_name"] for entry in log] == ["dropout-seed0", "dropout-seed1"]
        assert all(len(entry["epoch_seconds"]) == params["train"]["epochs"] for entry in log)
    assert {entry["run_id"] for log in logs for entry in log} == {r.info.run_id for r in runs}
