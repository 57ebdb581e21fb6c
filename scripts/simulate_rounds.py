"""The error rate and the decisiveness of the verdicts, by simulation
(tests/support/simulated_studies.py: studies drawn from known distributions, run through the real
procedure and the report's own comparison).

    python -m scripts.simulate_rounds [--studies 2000]     (make simulate)

Prints, per noise, truth and seeds, the family-wise rate of a wrong verdict over the whole
table (every variant, every measure) with its 95 % Clopper–Pearson interval, the share of
comparisons decided on best val loss and on test accuracy, and the seeds used per variant.
"""

from __future__ import annotations

import argparse

import numpy as np

from tests.support.simulated_studies import (
    ALPHA,
    COMPARED,
    NOISES,
    PAIRING,
    TRUTHS,
    Tally,
    schedules,
    study,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    n = parser.parse_args().studies
    print(
        f"{n} studies per row; 7 variants; α {ALPHA} over the whole table "
        f"({len(COMPARED)} measures); δ 1 sd; pairing {PAIRING}"
    )
    print(
        "| noise | truth | seeds | family-wise wrong [95 %] | decided, best val loss "
        "| decided, test accuracy | seeds per variant |"
    )
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for noise in NOISES:
        for truth_name, truth in TRUTHS.items():
            for schedule_name, schedule in schedules().items():
                tally = Tally()
                for _ in range(n):
                    tally.add(truth, *study(truth, schedule, noise, rng))
                print(f"| {noise.name} | {truth_name} | {schedule_name} | {tally.row()} |")


if __name__ == "__main__":
    main()
