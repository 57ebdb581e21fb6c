"""The default study again with a larger seed budget (`rounds.max`), to show what more
seeds decide: it runs `python -m pipeline study` in a scratch folder on params.yaml with only
`rounds` changed, its runs going to this project's MLflow store under an experiment
of their own, and copies the report to `reports/budget/`. The README's sentence on what a
larger budget buys is written from that report (`scripts/readme_findings.py`).

    python scripts/larger_budget.py [--max 12] [--step 3]     (make budget)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "budget"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=12, help="rounds.max (default: 12)")
    parser.add_argument("--step", type=int, default=3, help="rounds.step (default: 3)")
    args = parser.parse_args()
    budget = args.max
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rounds"] = {"max": budget, "step": args.step}
    params["mlflow"]["experiment"] += f"-rounds-max-{budget}"
    with tempfile.TemporaryDirectory(prefix="budget-") as scratch:
        folder = Path(scratch)
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # A study in a copy of the project, as a DVC experiment in `.dvc/tmp/exps/` is: DVC_ROOT
        # sends its runs to this project's store and `mlruns/` (paths.tracking_root).
        env = {**os.environ, "DVC_ROOT": str(ROOT)}
        python = os.path.abspath(sys.executable)  # the scratch folder is the working directory
        subprocess.run([python, "-m", "pipeline", "study"], cwd=folder, env=env, check=True)
        OUT.mkdir(parents=True, exist_ok=True)
        for name in ("gap_report.md", "summary.json"):
            shutil.copyfile(folder / "reports" / name, OUT / name)
        shutil.copyfile(folder / "rounds" / "rounds.json", OUT / "rounds.json")
    print(f"report: {OUT.relative_to(ROOT)}/gap_report.md")


if __name__ == "__main__":
    main()
