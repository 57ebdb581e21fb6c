"""Fault injection: interrupt the train and rounds stages at random moments, continue, and
count what the tracking store and the outputs then hold. `make chaos`; not part of `make test`.

The study in a scratch copy of the repository has three variants of two seeds each, and rounds
that add two more seeds to each (`rounds: {max: 4, step: 2}`: on two seeds no verdict can be
decided). Each trial runs one stage again: a variant's train stage (its two seeds as one
stack), or the rounds stage with its stored seeds removed (six seeds, two a stack). It sends
SIGINT, SIGTERM or SIGKILL to the stage during training, once a seed has trained its last
epoch (its model is being logged) or once every seed has finished (the outputs are being
written). It then runs `train --resume` (a train stage) and `dvc repro`, and checks: no run
left RUNNING; each seed the trial trained has one FINISHED run, with one value per epoch of
every per-epoch metric and one logged model; the outputs and the report equal those of an
uninterrupted study. Then a Ray worker is killed while it trains a seed the rounds added: the
study must end 1, name the run, and list it in the report. Then N trainings at once against a
tracking server on PostgreSQL (`scripts/tracking-server`) must lose no metric.

    python scripts/chaos.py [--interrupts 100] [--seed 0] [--ray-round] [--server-trainings 8]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from mlflow import MlflowClient

from pipeline.core.techniques import SWEPT

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 30
PER_EPOCH = ("train_loss", "val_loss", "loss_gap", "train_accuracy", "val_accuracy")
PARAMS = {
    "data": {"dataset": "digits", "val_fraction": 0.25, "test_fraction": 0.25},
    "model": {"hidden_sizes": [64]},
    "train": {
        "epochs": EPOCHS,
        "batch_size": 32,
        "lr": 0.003,
        "seeds": [0, 1],
        "device": "cpu",
        "threads": 1,
        "checkpoint_every": 5,
    },
    "variants": {"baseline": {}, "dropout": {"dropout": 0.5}, "l2": {"l2": 0.001}},
    "mlflow": {"experiment": "chaos", "log_model": True},
    "report": {"baseline": "baseline"},
    "rounds": {"max": 4, "step": 2},  # seeds 2 and 3 for every variant: 2 seeds decide nothing
    "sweep": {technique: [] for technique in SWEPT},  # no strength paths here
}
ROUNDS = "rounds"  # the trial's stage: a variant's name, or this
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
MOMENTS = ("training", "model logging", "output swap")


def scratch_copy(dest: Path, params: dict | None = None) -> Path:
    """The repository's tracked files without outputs, `params` (PARAMS) as params.yaml,
    committed."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        if not name.startswith(("reports/", "metrics/", "sweeps/", "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params or PARAMS, sort_keys=False))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "chaos copy"]):
        subprocess.run(["git", *args], cwd=dest, env=environment(), check=True)
    return dest


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "RAY_"))}
    env.update(PYTHONUNBUFFERED="1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="chaos")
    env.update(GIT_AUTHOR_EMAIL="chaos@example.com", GIT_COMMITTER_NAME="chaos")
    env.update(GIT_COMMITTER_EMAIL="chaos@example.com", **extra)
    return env


def run(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=repo, env=environment(**env), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed in {repo}:\n{done.stdout}\n{done.stderr}")
    return done


def reached(moment: str, runs: list[str], rng: random.Random):
    """A test of the stage's output lines that is true at the moment chosen, and how many
    lines must pass it; `runs`: the names of the runs the stage trains."""
    if moment == "training":
        wanted = f"{rng.choice(runs)} epoch {rng.randint(1, EPOCHS - 1)}/{EPOCHS}"
        return (lambda line: wanted in line), 1
    if moment == "model logging":  # a seed's last epoch is out: its run logs the model next
        return (lambda line: f"epoch {EPOCHS}/{EPOCHS}" in line), 1
    # Every seed's result line is out: the stage writes its outputs.
    return (lambda line: line.startswith(tuple(f"{r}: best epoch" for r in runs))), len(runs)


def interrupt(repo: Path, stage: str, runs: list[str], sig: str, moment: str, rng) -> str:
    """Start the stage (a variant's train stage, or the rounds), signal it at the moment;
    whether it was still on."""
    command = ["rounds"] if stage == ROUNDS else ["train", "--variant", stage]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *command],
        cwd=repo,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    test, times = reached(moment, runs, rng)
    assert process.stdout is not None
    for line in process.stdout:
        times -= test(line)
        if times == 0:
            break
    with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
        os.kill(process.pid, SIGNALS[sig])
    process.communicate(timeout=300)
    return "stage" if process.returncode != 0 else "stage, after it ended"


def check_trial(repo: Path, trained: list[str], since: int) -> dict[str, int]:
    """What the store holds for the runs the trial trained (`trained`, by name): counts of
    what must be zero."""
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(PARAMS["mlflow"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    found = collections.Counter(running=sum(r.info.status == "RUNNING" for r in runs))
    ours = [r for r in runs if r.info.start_time >= since and r.data.tags.get("kind") == "train"]
    for name in trained:
        finished = [r for r in ours if r.info.run_name == name and r.info.status == "FINISHED"]
        found["seeds without one FINISHED run"] += len(finished) != 1
        for r in finished:
            epochs = int(r.data.metrics["epochs_run"])
            for key in PER_EPOCH:
                steps = collections.Counter(
                    m.step for m in client.get_metric_history(r.info.run_id, key)
                )
                found["metrics lost"] += sum(1 for e in range(1, epochs + 1) if e not in steps)
                found["metrics doubled"] += sum(n - 1 for n in steps.values())
            models = client.search_logged_models(
                [experiment.experiment_id], filter_string=f"source_run_id = '{r.info.run_id}'"
            )
            found["runs without one model"] += len(models) != 1
    return found


def same_outputs(a: Path, b: Path) -> bool:
    names = ["reports/gap_report.md", "reports/summary.json", "rounds/rounds.json"]
    for variant in PARAMS["variants"]:
        names += [f"metrics/{variant}/{n}" for n in ("history.csv", "runs.json", "summary.json")]
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def ray_round(work: Path) -> dict[str, object]:
    """The study on a local Ray instance, one seed a task; the worker training a seed the
    rounds added is SIGKILLed once its run is open. What the study then says and leaves."""
    params = json.loads(json.dumps(PARAMS))
    params["train"]["parallel"] = 1  # a lost worker takes one run
    repo = scratch_copy(work / "ray", params)
    victim = "l2-seed2"  # seeds 0 and 1 are the train stage's; the round adds 2 and 3
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "study", "--executor", "ray", "--cpus-per-run", "0.5"],
        cwd=repo,
        env=environment(RAY_USAGE_STATS_ENABLED="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    query = (
        "SELECT tags.value FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
        "WHERE runs.name = ? AND runs.status = 'RUNNING' AND tags.key = 'worker_pid'"
    )
    worker = None
    while worker is None and process.poll() is None:
        # Read-only, from the file: a client here could race the study's creation of the schema.
        store = f"file:{repo / 'mlflow.db'}?mode=ro"
        with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(store, uri=True) as db:
            worker = db.execute(query, (victim,)).fetchone()
        time.sleep(0.2)
    if worker is not None:
        os.kill(int(worker[0]), signal.SIGKILL)
    _, stderr = process.communicate(timeout=600)
    report = repo / "reports" / "gap_report.md"
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(params["mlflow"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    return {
        "worker killed": worker is not None,
        "exit code": process.returncode,
        "named on stderr": f"{victim}: FAILED: its worker process died" in stderr,
        "listed in the report": report.is_file() and f"**{victim}**" in report.read_text(),
        "its run": next((r.info.status for r in runs if r.info.run_name == victim), "none"),
        "runs left RUNNING": sum(r.info.status == "RUNNING" for r in runs),
    }


def server_trainings(work: Path, count: int) -> dict[str, int]:
    """`count` trainings at once against `scripts/tracking-server`; metrics expected and lost."""
    repo = scratch_copy(work / "server")
    run(repo, sys.executable, "-m", "pipeline", "prepare")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["scripts/tracking-server"],
        cwd=repo,
        env=environment(
            MLFLOW_PORT=str(port),
            MLFLOW_ARTIFACTS=str(work / "served"),
            MLFLOW_DB="chaos",  # a role and database of its own: the project's stay untouched
            MLFLOW_DB_USER="chaos",
            MLFLOW_DB_PASSWORD="chaos-local-only",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        since = int(time.time() * 1000)
        trainings = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "train", "--variant", "l2", "--seed", str(k)],
                cwd=repo,
                env=environment(MLFLOW_TRACKING_URI=url),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for k in range(count)
        ]
        failed = sum(t.wait() != 0 for t in trainings)
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name(PARAMS["mlflow"]["experiment"])
        runs = client.search_runs(
            [experiment.experiment_id],
            f"attributes.status = 'FINISHED' and attributes.start_time >= {since}",
        )
        expected = sum(int(r.data.metrics["epochs_run"]) * len(PER_EPOCH) for r in runs)
        logged = sum(
            len(client.get_metric_history(r.info.run_id, key)) for r in runs for key in PER_EPOCH
        )
        return {
            "trainings": count,
            "failed": failed,
            "finished runs": len(runs),
            "metrics expected": expected,
            "metrics lost": expected - logged,
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def added_runs(repo: Path) -> list[str]:
    """The runs the rounds added, by name, as rounds/rounds.json says."""
    rounds = json.loads((repo / "rounds" / "rounds.json").read_text())
    first = rounds["looks"][0]
    return [
        f"{variant}-seed{seed}"
        for variant, outcome in rounds["variants"].items()
        for seed in rounds["seeds"][first : outcome["seeds"]]
    ]


def interrupts(work: Path, count: int, rng: random.Random) -> None:
    """`count` trials, then their table."""
    reference = scratch_copy(work / "reference")
    run(reference, "dvc", "repro")
    added = added_runs(reference)
    if not added:
        sys.exit("the rounds added no seed: the rounds stage would have nothing to interrupt")
    repo = scratch_copy(work / "chaos")
    run(repo, "dvc", "repro")
    rows: dict[tuple[str, str, str, str], collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    stages = [*PARAMS["variants"], ROUNDS]
    for trial in range(count):
        stage = rng.choice(stages)
        sig, moment = rng.choice(list(SIGNALS)), rng.choice(MOMENTS)
        if stage == ROUNDS:
            trained = added
            shutil.rmtree(repo / "rounds")  # so that the rounds train their seeds again
        else:
            trained = [f"{stage}-seed{s}" for s in PARAMS["train"]["seeds"]]
        since = int(time.time() * 1000)
        hit = interrupt(repo, stage, trained, sig, moment, rng)
        if stage != ROUNDS and hit != "stage, after it ended":  # a finished stage: no resume
            run(repo, sys.executable, "-m", "pipeline", "train", "--variant", stage, "--resume")
        run(repo, "dvc", "repro")  # the rounds continue here: the seeds they stored are reused
        found = check_trial(repo, trained, since)
        found["reports that differ"] += not same_outputs(repo, reference)
        row = rows["rounds" if stage == ROUNDS else "train", sig, hit, moment]
        row["interrupts"] += 1
        row.update(found)
        problems = ", ".join(f"{k} {v}" for k, v in found.items() if v) or "ok"
        print(
            f"[{trial + 1}/{count}] {stage}: {sig} to the {hit} during {moment}: "
            f"{problems} ({time.time() - since / 1000:.0f} s)",
            flush=True,
        )
    columns = [
        "interrupts",
        "running",
        "seeds without one FINISHED run",
        "metrics lost",
        "metrics doubled",
        "runs without one model",
        "reports that differ",
    ]
    print("\n| stage | signal | to the | during | " + " | ".join(columns) + " |")
    print("|---" * (4 + len(columns)) + "|")
    for (stage, sig, hit, moment), row in sorted(rows.items()):
        cells = " | ".join(str(row[c]) for c in columns)
        print(f"| {stage} | {sig} | {hit} | {moment} | {cells} |")
    total = sum((rows[k] for k in rows), collections.Counter())
    print("| all | | | | " + " | ".join(str(total[c]) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interrupts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ray-round",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="kill a Ray worker in a round",
    )
    parser.add_argument("--server-trainings", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    if args.interrupts:
        interrupts(work, args.interrupts, rng)
    if args.ray_round:
        print("\na Ray worker lost in a round:", json.dumps(ray_round(work)), flush=True)
    if args.server_trainings:
        print(
            "\nat once against the tracking server on PostgreSQL:",
            json.dumps(server_trainings(work, args.server_trainings)),
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
