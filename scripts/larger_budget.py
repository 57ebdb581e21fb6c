"""The default study again as a study of its own with a larger seed budget (`rounds.max`),
to show what more seeds decide: it runs `python -m pipeline study` in a scratch folder on
params.yaml with `rounds` changed and seeds from 1000 on, which the default study never looked
at (a second look at its seeds, read beside its report, would spend α again), its runs going
to this project's MLflow store under an experiment of their own, and copies the report to
`reports/budget/`. The README's sentence on it is written from that report
(`scripts/readme_findings.py`).

    python scripts/larger_budget.py [--max 20] [--step 5]     (make budget)
"""

from __future__ import annotations

import argparse

import yaml
from scratch_study import ROOT, study_in_scratch

OUT = ROOT / "reports" / "budget"
FIRST_SEED = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=20, help="rounds.max (default: 20)")
    parser.add_argument("--step", type=int, default=5, help="rounds.step (default: 5)")
    args = parser.parse_args()
    budget = args.max
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rounds"] = {"max": budget, "step": args.step}
    # Seeds of its own: the default study has looked at its seeds, and read beside it a
    # second look at them would spend α again (docs/verdicts.md, "A larger budget").
    first = len(params["train"]["seeds"])
    params["train"]["seeds"] = list(range(FIRST_SEED, FIRST_SEED + first))
    params["mlflow"]["experiment"] += f"-rounds-max-{budget}"
    files = {
        "reports/gap_report.md": "gap_report.md",
        "reports/summary.json": "summary.json",
        "reports/per_seed.csv": "per_seed.csv",  # what its verdicts rest on
        "reports/figures": "figures",  # the report's pictures, its verdicts' first
    }
    study_in_scratch(params, OUT, {**files, "rounds/rounds.json": "rounds.json"})
    print(f"report: {OUT.relative_to(ROOT)}/gap_report.md")


if __name__ == "__main__":
    main()
