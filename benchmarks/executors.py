"""`make bench-grid`: a 12-run grid (4 variants × 3 seeds of the default study) trained by
`python -m pipeline study` in-process and through Ray, side by side in one run.

Each executor runs the whole command (prepare, train, report) in a fresh scratch copy of the
repository with its own SQLite store, so neither finds the other's results; Ray starts a
local instance on this machine's cores (one CPU, one torch thread per run). Prints the wall
times and their ratio, checks that both trained the same numbers, and writes
reports/benchmark_grid.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("baseline", "dropout", "l2", "weight_decay")
EXECUTORS = {
    "in-process": ["study"],
    "ray (local, 1 CPU per run)": ["study", "--executor", "ray"],
}


def scratch_copy(dest: Path) -> Path:
    """The repository's tracked files without outputs; params.yaml cut to the grid."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        if name.startswith(("reports/", "metrics/", "sweeps/")) or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["variants"] = {k: v for k, v in params["variants"].items() if k in VARIANTS}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def results(folder: Path) -> dict[str, list[dict[str, float]]]:
    """Every run's summary (results only: timings are kept apart), by variant."""
    out = {}
    for variant in VARIANTS:
        runs = json.loads((folder / "metrics" / variant / "runs.json").read_text())
        out[variant] = [r["summary"] for r in runs]
    return out


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    seconds: dict[str, float] = {}
    trained: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in EXECUTORS.items():
            repo = scratch_copy(Path(tmp) / name.split()[0])
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pipeline", *args],
                cwd=repo,
                env=env,
                check=True,
                capture_output=True,
            )
            seconds[name] = time.perf_counter() - started
            trained[name] = results(repo)
    first, second = EXECUTORS
    same = trained[first] == trained[second]
    n_runs = sum(len(runs) for runs in trained[first].values())
    print(
        f"{n_runs}-run grid ({' × '.join([str(len(VARIANTS)), '3 seeds'])}, default study "
        f"settings), whole `python -m pipeline study`, {os.cpu_count()} cores:"
    )
    for name, value in seconds.items():
        print(f"  {name:<28} {value:7.1f} s")
    print(f"  ray / in-process: {seconds[second] / seconds[first]:.2f}")
    print(f"  same numbers from both: {'yes' if same else 'NO'}")
    out = {
        "runs": n_runs,
        "seconds": seconds,
        "ray_over_in_process": seconds[second] / seconds[first],
        "identical_results": same,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
    }
    (ROOT / "reports" / "benchmark_grid.json").write_text(json.dumps(out, indent=2) + "\n")
    if not same:
        sys.exit("the executors trained different numbers")


if __name__ == "__main__":
    main()
