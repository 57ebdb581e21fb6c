"""Seeds added in rounds (`rounds.seeds_until_decided`), with no training: studies drawn from
known distributions, each look's new seeds drawn when the procedure asks for them, run through
the real procedure and the report's own comparison. The verdicts stay right together with
probability at least 1 − α although the data are looked at after every round, and the
procedure decides what one look at the final seeds would (its power).

A study's per-seed values are differences from the baseline: the baseline's are 0, a
variant's are drawn around its true difference, independently for each measure.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis import EQUIVALENT, compare_variants
from pipeline.config import SeedRounds
from pipeline.errors import DataError
from pipeline.loading import parse_params
from pipeline.metrics import METRICS
from pipeline.outputs import VariantRuns, write_rounds
from pipeline.paths import Layout
from pipeline.records import RunRecord
from pipeline.reports import compare
from pipeline.rounds import (
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

from .conftest import TINY_PARAMS

ALPHA = 0.05
DELTA = 0.02
MARGINS = dict.fromkeys(DRIVING, DELTA)
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
            {s: {k: mean + noise * self.rng.standard_normal() for k in DRIVING} for s in seeds},
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
        looks = len(schedule.looks)
        diffs = compare_variants(final, "baseline", DRIVING, ALPHA, MARGINS, looks)
        return rounds, diffs


def wrong(verdict: str, key: str, truth: float) -> bool:
    words = METRICS[key].words
    if verdict == words[0]:
        return not truth < 0  # both driving measures: lower is better
    if verdict == words[1]:
        return not truth > 0
    if verdict == EQUIVALENT:
        return not abs(truth) < DELTA
    return False


def test_a_schedule_looks_after_each_round_up_to_the_budget() -> None:
    assert SCHEDULE.looks == (3, 6, 9, 12)
    assert SCHEDULE.seeds == tuple(range(12))
    # The seeds first given, then the smallest ones not among them; the last look at max.
    odd = Schedule.of([5, 1], SeedRounds(max=5))
    assert (odd.seeds, odd.looks) == ((5, 1, 0, 2, 3), (2, 4, 5))


def test_rounds_train_only_the_undecided_and_the_baseline_seeds_they_pair_with() -> None:
    # "far" is 20 sd below zero: decided at the first look. "near" sits on the margin δ with
    # an sd of 2.5 δ: no interval of 12 seeds is narrow enough to decide it.
    drawn = Drawn({"far": -1.0, "near": DELTA}, sd=0.05, rng=np.random.default_rng(0))
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


@pytest.mark.parametrize(
    "truth",
    [
        dict.fromkeys("abcdefg", 0.0),  # the null: every variant equal to the baseline
        dict.fromkeys("abcdefg", DELTA),  # each at the margin: "equivalent" is wrong
        {"a": 0.0, "b": 0.01, "c": -0.01, "d": 0.02, "e": -0.02, "f": 0.03, "g": 0.05},
    ],
)
def test_the_family_wise_error_rate_stays_at_or_below_alpha_over_the_looks(truth) -> None:
    rng = np.random.default_rng(2)
    studies, failed = 600, dict.fromkeys(DRIVING, 0)
    for _ in range(studies):
        _, diffs = Drawn(truth, sd=0.02, rng=rng).run()
        for key in DRIVING:
            failed[key] += any(wrong(diffs[n][key].verdict, key, t) for n, t in truth.items())
    for key, count in failed.items():
        # The lower end of the rate's 99 % Clopper–Pearson interval stays at or under α.
        low = stats.beta.ppf(0.01, count, studies - count + 1) if count else 0.0
        assert low <= ALPHA, (key, count / studies)


def test_rounds_decide_at_least_as_often_as_one_look_at_the_final_seeds() -> None:
    # A true difference of 1.5 sd: one look at 12 seeds at level α/(m·K) finds it with the
    # noncentral-t power below; the rounds may stop earlier, but only with a verdict.
    truth = dict.fromkeys("abcdefg", -0.03)
    sd, studies = 0.02, 300
    m, k, n = 7, len(SCHEDULE.looks), SCHEDULE.looks[-1]
    level = ALPHA / (m * k)
    critical = stats.t.ppf(1 - level / 2, n - 1)
    one_look = stats.nct.sf(critical, n - 1, (0.03 / sd) * np.sqrt(n))
    rng = np.random.default_rng(3)
    found = total = 0
    for _ in range(studies):
        _, diffs = Drawn(truth, sd, rng).run()
        found += sum(diffs[v]["best_val_loss"].verdict == "better" for v in truth)
        total += len(truth)
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
    found = compare.training_runs(runs, "study", "label_noise", {})
    assert [r.seed for r in found] == [0, 1]
