"""Seeds added in rounds until every verdict is decided (`rounds: {max, step}` in params.yaml).

The verdicts are read at planned looks: after the seeds of `train.seeds`, then after each
`step` more, up to `max`. At each look every variant still going is compared with the baseline
on the seeds both have; it stops once its verdicts on the validation measures (`DRIVING`) are
all decided, and the next round trains `step` more seeds for the variants still going and for
the baseline, whose seeds they pair with.

Looking after each round does not inflate the error rate: each comparison's share of α is spent
over the K planned looks, little at the first and most at the last (`comparisons.Family`), and
its interval at a look is the intersection of its intervals so far. With probability at least
1 − α every interval of a measure, at every look, holds its true difference at once (the union
bound), so whatever the data make the procedure do, every verdict read from those intervals
is right together with that probability, and a verdict once decided stays decided
(tests/unit/analysis/test_seed_rounds.py and scripts/simulate_rounds.py measure it by
simulation, the looks included).

The test split never drives a choice, so test accuracy does not decide whether a variant
gets more seeds; its intervals are read the same way, at the looks the validation measures
went through.

No training here: who trains the seeds is the caller's `train`, so the same procedure runs in
the DVC stage, in `study` here and on Ray, and in the simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Params, SeedRounds
from ..core.errors import DataError
from ..core.metrics import COMPARED
from ..core.paths import Layout
from ..core.records import MissingRun
from ..outputs.round_files import read_rounds
from ..outputs.variant_files import VariantRuns
from .comparisons import (
    TOO_FEW,
    UNDECIDED,
    Comparison,
    Family,
    against_baseline,
    compare_variants,
    withheld,
)

# The validation measures whose verdicts decide who gets more seeds. Val accuracy is there so
# that test accuracy, which never drives a choice, gets the seeds its proxy needs; it is read
# with test accuracy's δ, and is not one of the report's verdicts (stopping needs no α).
DRIVING = ("loss_gap_last", "best_val_loss", "best_val_accuracy")
MARGIN_OF = {"best_val_accuracy": "test_accuracy"}

# Why a variant has the seeds it has.
DECIDED = "decided"
BUDGET_SPENT = "budget spent"  # at `max` seeds with a verdict still undecided
NO_VERDICT = "no verdict"  # a side diverged: more seeds cannot give a verdict
FIXED = "fixed seeds"  # rounds: null, one look
PAIRS = "pairs with the variants"  # the baseline: as many seeds as the variants that needed most


@dataclass(frozen=True)
class Schedule:
    """The seeds, in the order they are added, and how many the verdicts are read at."""

    seeds: tuple[int, ...]
    looks: tuple[int, ...]  # seed counts, increasing; the last is len(seeds)

    @classmethod
    def of(cls, seeds: list[int], rounds: SeedRounds | None) -> Schedule:
        """The plan of `train.seeds` and the `rounds` section (None: one look)."""
        if rounds is None:
            return cls(tuple(seeds), (len(seeds),))
        rounds.check_seeds(seeds)
        return cls(tuple(rounds.seed_order(seeds)), rounds.looks(seeds))

    @property
    def adaptive(self) -> bool:
        return len(self.looks) > 1

    def first(self) -> list[int]:
        """The seeds every variant trains before the first look (its train stage)."""
        return list(self.seeds[: self.looks[0]])


@dataclass(frozen=True)
class Outcome:
    seeds: int
    stopped: str


@dataclass(frozen=True)
class Rounds:
    """What the procedure did: the plan, each variant's seeds and why it stopped, and the
    verdicts it read at each look (variant → measure → verdict, for the variants going)."""

    schedule: Schedule
    alpha: float
    margins: dict[str, float]
    outcomes: dict[str, Outcome]
    looks: list[tuple[int, dict[str, dict[str, str]]]] = field(default_factory=list)
    missing: list[MissingRun] = field(default_factory=list)  # runs of the rounds that failed

    def seeds_of(self, variant: str) -> list[int]:
        return list(self.schedule.seeds[: self.outcomes[variant].seeds])

    def added(self, variant: str) -> list[int]:
        """The seeds the rounds added to `variant` and finished, beyond its train stage's."""
        lost = {m.seed for m in self.missing if m.variant == variant}
        return [s for s in self.seeds_of(variant)[self.schedule.looks[0] :] if s not in lost]

    def to_json(self) -> dict[str, Any]:
        return {
            "seeds": list(self.schedule.seeds),
            "looks": list(self.schedule.looks),
            "alpha": self.alpha,
            "margins": self.margins,
            "driving": list(DRIVING),
            "variants": {
                name: {"seeds": o.seeds, "stopped": o.stopped} for name, o in self.outcomes.items()
            },
            "verdicts_at_looks": [{"seeds": n, "verdicts": v} for n, v in self.looks],
            "missing_runs": [m.to_json() for m in self.missing],
        }

    def compare(
        self,
        variants: Sequence[VariantRuns],
        baseline: str,
        keys: Sequence[str],
        margins: Mapping[str, float],
    ) -> dict[str, dict[str, Comparison]]:
        """The report's comparisons of `variants` (each on the seeds the rounds gave it),
        each read at the looks its seeds went through."""
        looks = self.schedule.looks if self.schedule.adaptive else ()
        upto = {name: outcome.seeds for name, outcome in self.outcomes.items()}
        return compare_variants(
            variants, baseline, keys, self.alpha, margins, self.schedule.seeds, looks, upto
        )

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Rounds:
        return cls(
            Schedule(tuple(entry["seeds"]), tuple(entry["looks"])),
            float(entry["alpha"]),
            {k: float(v) for k, v in entry["margins"].items()},
            {n: Outcome(int(o["seeds"]), str(o["stopped"])) for n, o in entry["variants"].items()},
            [(int(look["seeds"]), look["verdicts"]) for look in entry["verdicts_at_looks"]],
            [MissingRun.from_json(m) for m in entry.get("missing_runs", [])],
        )


def fixed(
    schedule: Schedule, names: Sequence[str], alpha: float, margins: Mapping[str, float]
) -> Rounds:
    """One look at a fixed list of seeds: every variant has them all."""
    n = len(schedule.seeds)
    return Rounds(schedule, alpha, dict(margins), {name: Outcome(n, FIXED) for name in names})


def restricted(runs: VariantRuns, seeds: set[int]) -> VariantRuns:
    """`runs` on `seeds` only."""
    return VariantRuns(
        runs.name,
        [r for r in runs.records if r.seed in seeds],
        [m for m in runs.missing if m.seed in seeds],
    )


def merged(old: VariantRuns, new: VariantRuns) -> VariantRuns:
    return VariantRuns(old.name, old.records + new.records, old.missing + new.missing)


def decided(verdicts: Mapping[str, str]) -> bool:
    return all(v not in (UNDECIDED, TOO_FEW) for v in verdicts.values())


def seeds_until_decided(
    schedule: Schedule,
    first: Mapping[str, VariantRuns],
    baseline: str,
    alpha: float,
    margins: Mapping[str, float],
    train: Callable[[dict[str, list[int]]], Mapping[str, VariantRuns]],
    table: tuple[int, int] | None = None,
) -> Rounds:
    """Run the rounds from the first look's runs (`first`, every variant, the baseline's
    name among them); `train` trains the seeds it is given per variant and returns their runs.
    `table`: the comparisons and measures of the table whose verdicts a look reads (default:
    the gap report's, every variant on every measure it compares)."""
    names = list(first)
    if not schedule.adaptive:
        return fixed(schedule, names, alpha, margins)
    runs = dict(first)
    # The report's family (every measure of its table), so a look decides as the report reads.
    size, measures = table or (len(names) - 1, len(COMPARED))
    family = Family(size, alpha, schedule.seeds, schedule.looks, measures)
    going = [n for n in names if n != baseline]
    outcomes: dict[str, Outcome] = {}
    looks = []
    lost: list[MissingRun] = []
    previous = 0
    for count in schedule.looks:
        if previous:
            new = list(schedule.seeds[previous:count])
            for name, added in train(dict.fromkeys([baseline, *going], new)).items():
                runs[name] = merged(runs[name], added)
                lost += added.missing
        previous = count
        seeds = set(schedule.seeds[:count])
        base = restricted(runs[baseline], seeds)
        verdicts = {}
        for name in going:
            variant = restricted(runs[name], seeds)
            reason = withheld(variant, base)
            verdicts[name] = {
                k: against_baseline(
                    k,
                    variant.per_seed(k),
                    base.per_seed(k),
                    family,
                    margins[MARGIN_OF.get(k, k)],
                    reason,
                    count,
                ).verdict
                for k in DRIVING
            }
            if reason:
                outcomes[name] = Outcome(count, NO_VERDICT)
            elif decided(verdicts[name]):
                outcomes[name] = Outcome(count, DECIDED)
        looks.append((count, verdicts))
        going = [n for n in going if n not in outcomes]
        if not going:
            break
    outcomes |= {name: Outcome(previous, BUDGET_SPENT) for name in going}
    needed = max((o.seeds for o in outcomes.values()), default=schedule.looks[0])
    outcomes[baseline] = Outcome(needed, PAIRS)
    return Rounds(schedule, alpha, dict(margins), {n: outcomes[n] for n in names}, looks, lost)


def rounds_for_report(params: Params, layout: Layout) -> Rounds:
    """What the rounds did, for the report. With a list of seeds there are no rounds that must
    have run; with rounds, they must have run for the plan params.yaml holds now."""
    schedule = Schedule.of(params.train.seeds, params.rounds)
    margins = params.report.equivalence.model_dump()
    planned = fixed(schedule, list(params.variants), params.report.alpha, margins)
    saved = read_rounds(layout)
    if saved is None and not schedule.adaptive:
        return planned
    return as_planned(
        saved,
        planned,
        f"{layout.rounds_record}: missing, or made for other settings than params.yaml holds; "
        "run the rounds (`python -m pipeline rounds` or `dvc repro`)",
    )


def as_planned(saved: Mapping[str, Any] | None, planned: Rounds, refusal: str) -> Rounds:
    """The rounds a record says were run (`Rounds.to_json`), where they were run for the plan
    `planned` holds (its seeds and looks, α, margins and names); else a DataError, `refusal`."""
    found = Rounds.from_json(saved) if saved else None
    if found is None or (found.schedule, found.alpha, found.margins, sorted(found.outcomes)) != (
        planned.schedule,
        planned.alpha,
        planned.margins,
        sorted(planned.outcomes),
    ):
        raise DataError(refusal)
    return found
