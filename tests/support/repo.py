"""A scratch copy of the repository with tiny settings, and a runner for the real
`python -m pipeline`, `dvc` and `mlflow` commands inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from pipeline.core.techniques import SWEPT

REPO = Path(__file__).resolve().parents[2]


BIN = Path(sys.executable).parent  # the environment's python, dvc and mlflow


# Small enough for seconds per stage on 2 cores, large enough to overfit: sklearn's digits
# (1,797 8x8 images, shipped with scikit-learn, no download).
TINY_PARAMS = {
    "data": {"dataset": "digits", "val_fraction": 0.25, "test_fraction": 0.25, "split_seed": 0},
    "model": {"hidden_sizes": [32]},
    "train": {
        "epochs": 4,
        "batch_size": 64,
        "lr": 0.003,
        "seeds": [0, 1],
        "device": "cpu",
        "threads": 1,
    },
    "variants": {
        "baseline": {},
        "dropout": {"dropout": 0.5},
        "l2": {"l2": 0.001},
    },
    "mlflow": {"experiment": "tiny-study", "log_model": True},
    "report": {"baseline": "baseline"},
    "rounds": None,  # the seeds above, no more (dvc.yaml's rounds stage reads the key)
    # sweep-stages/dvc.yaml reads every technique's list; empty: no strength paths in these tests
    "sweep": {
        **{technique: [] for technique in SWEPT},
        "combined": {"dropout": [], "weight_decay": []},  # the joint grid's stage reads both
    },
}


def command_env(**extra: str) -> dict[str, str]:
    # Nothing of the caller's MLflow, DVC or Ray settings: RAY_ADDRESS would send a test's
    # local Ray instance to the caller's cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "RAY_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
        DVC_NO_ANALYTICS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


Runner = Callable[..., subprocess.CompletedProcess]


def make_runner(cwd: Path) -> Runner:
    def run(*args: str, check: bool = True, timeout: float = 600, **env: str):
        result = subprocess.run(
            list(args),
            cwd=cwd,
            env=command_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}"
                f"\n--- stderr\n{result.stderr}"
            )
        return result

    return run


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.splitlines() if (REPO / f).is_file()]


def scratch_repo(dest: Path, params: dict) -> Path:
    """Copy the repository's tracked files (without its outputs), write `params`, commit."""
    skip = ("reports/", "metrics/", "sweeps/", "tuned-rounds/", "dvc.lock")
    for name in tracked_files():
        if name.startswith(skip):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = make_runner(dest)
    run("git", "init", "-q", "-b", "main")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "scratch copy")
    return dest
