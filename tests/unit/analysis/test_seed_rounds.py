"""Seeds added in rounds (`seed_rounds.seeds_until_decided`), with no training: studies drawn from
known distributions, each look's new seeds drawn when the procedure asks for them, run through
the real procedure and the report's own comparison (tests/support/simulated_studies.py). The
verdicts of the whole table stay right together with probability at least 1 − α although the
data are looked at after every round, and a check of that would see a rate of 0.07.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis.comparisons import Family
from pipeline.analysis.seed_rounds import (
    BUDGET_SPENT,
    DECIDED,
    DRIVING,
    FIXED,
    PAIRS,
    Outcome,
    Schedule,
    fixed,
    rounds_for_report,
    seeds_until_decided,
)
from pipeline.core.config import SeedRounds
from pipeline.core.errors import DataError
from pipeline.core.loading import parse_params
from pipeline.core.metrics import COMPARED
from pipeline.core.paths import Layout
from pipeline.core.records import RunRecord
from pipeline.outputs.round_files import write_rounds
from pipeline.outputs.variant_files import VariantRuns
from pipeline.reports import across_studies
from tests.support.repo import TINY_PARAMS
from tests.support.simulated_studies import NOISES, TRUTHS, Tally, schedules, study, too_many

ALPHA = 0.05
DELTA = 0.02
MARGINS = dict.fromkeys(COMPARED, DELTA)
MEASURES = (*DRIVING, "test_accuracy")
SCHEDULE = Schedule.of([0, 1, 2], SeedRounds(max=12, step=3))


def runs(name: str, values: dict[int, dict[str, float]]) -> VariantRuns:
    records = [RunRecord(name, s, {}, "cpu", False, v, []) for s, v in sorted(values.items())]
    return VariantRuns(name, records)


class Drawn:
    """A simulated study: each variant's true differences, its seeds drawn on demand."""

    def __init__(self, truth: dict[str, float], sd: float, rng: np.random.Generator) -> None:
        self.truth, self.sd, self.rng = truth, sd, rng
        self.asked: list[dict[str, list[int]]] = []

    def draw(self, name: str, seeds: list[int]) -> VariantRuns:
        mean = self.truth.get(name, 0.0)  # the baseline: 0
        noise = self.sd if name in self.truth else 0.0
        return runs(
            name,
            {s: {k: mean + noise * self.rng.standard_normal() for k in MEASURES} for s in seeds},
        )

    def train(self, need: dict[str, list[int]]) -> dict[str, VariantRuns]:
        self.asked.append(need)
        return {name: self.draw(name, seeds) for name, seeds in need.items()}

    def run(self, schedule: Schedule = SCHEDULE):
        first = {name: self.draw(name, schedule.first()) for name in ["baseline", *self.truth]}
        trained = {name: list(r.records) for name, r in first.items()}

        def train(need):
            new = self.train(need)
            for name, r in new.items():
                trained[name] += r.records
            return new

        rounds = seeds_until_decided(schedule, first, "baseline", ALPHA, MARGINS, train)
        final = [
            VariantRuns(name, [r for r in records if r.seed in rounds.seeds_of(name)])
            for name, records in trained.items()
        ]
        return rounds, rounds.compare(final, "baseline", COMPARED, MARGINS)


def test_a_schedule_looks_after_each_round_up_to_the_budget() -> None:
    assert SCHEDULE.looks == (3, 6, 9, 12)
    assert SCHEDULE.seeds == tuple(range(12))
    # The seeds first given, then counting up from the largest; the last look at max.
    odd = Schedule.of([5, 1], SeedRounds(max=5))
    assert (odd.seeds, odd.looks) == ((5, 1, 6, 7, 8), (2, 4, 5))


def test_rounds_train_only_the_undecided_and_the_baseline_seeds_they_pair_with() -> None:
    # "far" is 100 sd below zero: decided at the first look, though it spends 1.6 % of the
    # comparison's α there. "near" sits on the margin δ with
    # an sd of 2.5 δ: no interval of 12 seeds is narrow enough to decide it.
    drawn = Drawn({"far": -5.0, "near": DELTA}, sd=0.05, rng=np.random.default_rng(0))
    rounds, _ = drawn.run()
    assert rounds.outcomes["far"] == Outcome(3, DECIDED)
    assert rounds.outcomes["near"] == Outcome(12, BUDGET_SPENT)
    assert rounds.outcomes["baseline"] == Outcome(12, PAIRS)
    # Each round asks for the next seeds of the baseline and of the variants still going.
    for need, start in zip(drawn.asked, (3, 6, 9), strict=True):
        assert sorted(need) == ["baseline", "near"]
        assert need["near"] == list(range(start, start + 3))


def test_fixed_seeds_have_one_look_and_train_nothing_more() -> None:
    schedule = Schedule((0, 1, 2), (3,))
    drawn = Drawn({"a": 0.5}, sd=0.1, rng=np.random.default_rng(0))
    rounds, _ = drawn.run(schedule)
    assert drawn.asked == []
    assert {o.stopped for o in rounds.outcomes.values()} == {FIXED}


STUDIES = 2000


def test_the_error_rate_check_fails_at_a_rate_of_0_07() -> None:
    """The check below, at 2,000 studies, fails a procedure whose true family-wise rate is
    0.07 with probability at least 0.9, and one at exactly α at most 1 % of the time."""
    limit = too_many(STUDIES)
    assert stats.binom.sf(limit, STUDIES, ALPHA) <= 0.01
    assert stats.binom.sf(limit, STUDIES, 0.07) >= 0.9


@pytest.mark.parametrize(
    ("noise", "truth", "schedule"),
    [
        # The default plan under the null: each look can call a difference that is not there.
        (NOISES[0], "null (all equal)", "5, rounds to 10 (default)"),
        # Heavy tails and a lost run, at δ on either side: every "equivalent" is wrong.
        (NOISES[1], "all at ±δ", "rounds to 12, step 3"),
        # Zeros beside truths at δ: the case that breaks a step-down (docs/verdicts.md).
        (NOISES[1], "adversarial: 4 at 0, 3 at δ", "rounds to 12, step 3"),
    ],
    ids=["null-default", "at-delta-heavy", "adversarial-heavy"],
)
def test_the_verdicts_of_the_table_are_wrong_together_at_most_alpha(noise, truth, schedule):
    rng = np.random.default_rng(7)
    tally = Tally()
    for _ in range(STUDIES):
        tally.add(TRUTHS[truth], *study(TRUTHS[truth], schedules()[schedule], noise, rng))
    assert tally.failed <= too_many(STUDIES), tally.row()


def test_rounds_decide_at_least_what_their_last_look_alone_would() -> None:
    # A true difference of 1.5 sd on every measure: one look at 12 seeds at the last look's
    # level finds it with the noncentral-t power below; the rounds may stop earlier, but only
    # with a verdict, and earlier looks' intervals only narrow the last one.
    schedule = schedules()["rounds to 12, step 3"]
    m, studies = 7, 300
    last = Family(m, ALPHA, schedule.seeds, schedule.looks, len(COMPARED)).shares()[-1]
    n = schedule.looks[-1]
    critical = stats.t.ppf(1 - last / 2, n - 1)
    one_look = stats.nct.sf(critical, n - 1, 1.5 * np.sqrt(n))
    rng = np.random.default_rng(3)
    tally = Tally()
    truth = TRUTHS["all −1.5 sd"]
    for _ in range(studies):
        tally.add(truth, *study(truth, schedule, NOISES[0], rng))
    found = tally.decided["best_val_loss"]
    total = tally.comparisons
    # Not below it beyond Monte-Carlo error: the upper end of the rate's 99 % interval.
    assert stats.beta.ppf(0.99, found + 1, total - found) >= one_look, (found / total, one_look)


def test_the_report_takes_only_rounds_made_for_the_plan_params_yaml_holds(tmp_path) -> None:
    raw = copy.deepcopy(TINY_PARAMS)
    layout = Layout(tmp_path)
    listed = parse_params(raw)  # a list of seeds: no rounds need have run
    assert rounds_for_report(listed, layout).outcomes["l2"] == Outcome(2, FIXED)
    raw["rounds"] = {"max": 4, "step": 1}
    params = parse_params(raw)
    with pytest.raises(DataError, match="run the rounds"):
        rounds_for_report(params, layout)  # none yet
    margins = params.report.equivalence.model_dump()
    names = list(params.variants)
    stale = fixed(Schedule((0, 1, 2), (2, 3)), names, params.report.alpha, margins)
    write_rounds(layout, stale.to_json(), {})
    with pytest.raises(DataError, match="other settings than params.yaml"):
        rounds_for_report(params, layout)
    current = fixed(
        Schedule.of(params.train.seeds, params.rounds), names, params.report.alpha, margins
    )
    write_rounds(layout, current.to_json(), {})
    assert rounds_for_report(params, layout) == current


def test_compare_across_studies_leaves_out_the_seeds_added_in_rounds() -> None:
    """A study's added seeds were chosen by its own verdicts; `compare` reads a fixed design."""

    def logged(seed: int, **tags: str) -> SimpleNamespace:
        return SimpleNamespace(
            data=SimpleNamespace(
                tags={"variant": "l2", "seed": str(seed), "kind": "train", **tags},
                params={"label_noise": "0.0", "seed": str(seed)},
                metrics={},
            ),
            info=SimpleNamespace(start_time=seed),
        )

    runs = [logged(0), logged(1), logged(2, round="1")]
    found = across_studies.training_runs(runs, "study", "label_noise", {})
    assert [r.seed for r in found] == [0, 1]
