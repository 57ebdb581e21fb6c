"""A technique tuned within each seed on validation, judged against the baseline on test: the
choice, and the verdicts' error rate when the choice is made on noise."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline.analysis.comparisons import UNDECIDED
from pipeline.analysis.seed_rounds import Schedule
from pipeline.analysis.tuning import (
    fixed_strength_variants,
    on_test,
    tune,
    tuned_until_decided,
    tuned_verdicts,
)
from pipeline.core.config import ReportConfig, SeedRounds
from pipeline.core.loading import load_params, parse_params
from pipeline.core.metrics import TUNED
from pipeline.core.records import RunRecord
from tests.support.repo import REPO

SETTINGS = ReportConfig()


def run(
    seed: int,
    val: float,
    test_loss: float,
    test_accuracy: float = 0.9,
    val_accuracy: float = 0.9,
) -> RunRecord:
    """A finished run of 3 epochs whose best epoch is the 2nd (train loss 0.2 there)."""
    history = [
        {"train_loss": 0.3, "val_loss": val + 0.1},
        {"train_loss": 0.2, "val_loss": val},
        {"train_loss": 0.1, "val_loss": val + 0.05},
    ]
    summary = {
        "best_val_loss": val,
        "best_epoch": 2.0,
        "best_val_accuracy": val_accuracy,
        "loss_gap_last": history[-1]["val_loss"] - history[-1]["train_loss"],
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    }
    return RunRecord("t", seed, {}, "cpu", False, summary, history)


def test_the_strength_of_lowest_val_loss_is_chosen_in_each_seed() -> None:
    # Planted: 0.1 best on validation for seed 0, 0.3 for seed 1, 0.2 (a tie) for seed 2;
    # the test losses would have chosen otherwise, and must not matter.
    val = {0.1: (0.30, 0.50, 0.40), 0.2: (0.40, 0.45, 0.35), 0.3: (0.50, 0.40, 0.35)}
    path = {
        s: {seed: run(seed, v[seed], test_loss=1.0 - s) for seed in range(3)}
        for s, v in val.items()
    }
    tuned = tune("dropout", path, [0, 1, 2])
    assert tuned.chosen == {0: 0.1, 1: 0.3, 2: 0.2}  # the tie goes to the weaker strength
    assert tuned.measures["test_loss"] == pytest.approx({0: 0.9, 1: 0.7, 2: 0.8})
    # The test gap: test loss − the train loss of the best epoch (0.2).
    assert tuned.measures["test_gap"] == pytest.approx({0: 0.7, 1: 0.5, 2: 0.6})
    assert tuned.wins() == {0.1: 1, 0.2: 1, 0.3: 1}
    assert tuned.edges() == {}  # one seed at each end: no end chosen by most
    low = {s: {seed: run(seed, 0.3 + s, 0.5) for seed in range(3)} for s in val}
    assert tune("dropout", low, [0, 1, 2]).edges() == {"dropout": 0.1}  # all chose the weakest


def test_test_measures_are_those_of_the_best_epochs_weights() -> None:
    measures = on_test(run(0, 0.4, test_loss=0.45, test_accuracy=0.88))
    assert measures == pytest.approx({"test_gap": 0.25, "test_loss": 0.45, "test_accuracy": 0.88})


def test_a_technique_that_helps_on_test_is_called_better_on_every_test_measure() -> None:
    rng = np.random.default_rng(0)
    seeds = range(10)
    baseline = {
        s: run(s, 0.5, test_loss=0.5 + rng.normal(0, 0.005), test_accuracy=0.90) for s in seeds
    }
    path = {
        strength: {
            s: run(
                s,
                0.4 + strength,
                test_loss=baseline[s].summary["test_loss"] - 0.1,
                test_accuracy=0.95 + rng.normal(0, 0.001),
            )
            for s in seeds
        }
        for strength in (0.0001, 0.001)
    }
    tuned = tune("l2", path, list(seeds))
    tuned_ones, at_fixed = tuned_verdicts([tuned], baseline, SETTINGS)
    assert at_fixed == {}
    [verdicts] = tuned_ones.values()
    assert set(verdicts) == set(TUNED)
    assert verdicts["test_loss"].verdict == "better"
    assert verdicts["test_gap"].verdict == "closes the gap"
    assert verdicts["test_accuracy"].verdict == "better"
    # One technique on three measures: each comparison's share of α is α/3.
    assert verdicts["test_loss"].family.level == pytest.approx(SETTINGS.alpha / 3)


def test_choosing_on_validation_does_not_bias_the_test_verdicts() -> None:
    """Techniques with no effect at any strength: on validation the best of each grid beats the
    baseline in nearly every study, yet the tuned verdicts on test are wrong (a difference
    called, on any technique or measure, where there is none) in at most α of the studies.
    Each run's validation and test numbers share its seed's effect, as real runs do, and
    differ by their own noise."""
    rng = np.random.default_rng(7)
    studies, n, grid, techniques = 300, 6, (0.1, 0.3, 0.5, 0.7), ("a", "b", "c")
    wrong, flattered = 0, 0
    for _ in range(studies):
        seed_effect = rng.normal(0, 0.02, size=n)

        def draw(seed: int, seed_effect: np.ndarray = seed_effect) -> RunRecord:
            common = 0.5 + seed_effect[seed]
            return run(
                seed,
                common + rng.normal(0, 0.01),
                test_loss=common + rng.normal(0, 0.01),
                test_accuracy=0.9 - seed_effect[seed] + rng.normal(0, 0.005),
            )

        baseline = {s: draw(s) for s in range(n)}
        paths = {t: {g: {s: draw(s) for s in range(n)} for g in grid} for t in techniques}
        tuned = [tune(t, path, range(n)) for t, path in paths.items()]
        for t in tuned:  # the chosen strength's val loss against the baseline's, on average
            val = [paths[t.technique][t.chosen[s]][s].summary["best_val_loss"] for s in range(n)]
            base = [baseline[s].summary["best_val_loss"] for s in range(n)]
            flattered += np.mean(val) < np.mean(base)
        said = [
            c.verdict
            for v in tuned_verdicts(tuned, baseline, SETTINGS)[0].values()
            for c in v.values()
        ]
        wrong += any(v not in (UNDECIDED, "equivalent") for v in said)
    assert flattered / (studies * len(techniques)) > 0.9  # the choice flatters validation
    assert wrong / studies <= SETTINGS.alpha, wrong


def test_the_variants_that_are_one_technique_at_one_strength_are_found() -> None:
    """params.yaml's l2, l1 and weight_decay variants are a path's settings at one strength
    (weight decay's path uses AdamW, as that variant does); dropout's variant adds input
    dropout, elastic_net two penalties, combined several: none of those is one technique."""
    params = load_params(REPO / "params.yaml")
    assert fixed_strength_variants(params) == {
        "l2": ("l2", 0.001),
        "l1": ("l1", 3e-05),
        "weight_decay": ("weight_decay", 1.0),
    }


def test_a_technique_at_a_fixed_strength_shares_the_family_of_the_tuned_ones() -> None:
    """Its rows beside the tuned ones in one table: α covers both, so each comparison's share
    is α over (tuned + fixed) × measures, and its change is its own runs' against the
    baseline's."""
    baseline = {s: run(s, 0.5, test_loss=0.50 + 0.01 * s) for s in range(4)}
    path = {0.1: {s: run(s, 0.4, test_loss=0.45 + 0.01 * s) for s in range(4)}}
    fixed = {s: run(s, 0.45, test_loss=0.48 + 0.01 * s) for s in range(4)}
    tuned, at_fixed = tuned_verdicts(
        [tune("l2", path, range(4))], baseline, SETTINGS, {"l2": fixed}
    )
    assert at_fixed["l2"]["test_loss"].diff.mean == pytest.approx(-0.02)
    assert tuned["l2"]["test_loss"].diff.mean == pytest.approx(-0.05)
    assert at_fixed["l2"]["test_loss"].family.level == pytest.approx(SETTINGS.alpha / (2 * 3))


def test_a_fixed_strength_variant_is_the_paths_point_on_the_baselines_settings() -> None:
    """On a baseline with early stopping, the path's point is early stopping plus the
    technique: a variant of l2 alone is another network, a variant of both is the point."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["variants"] = {
        "base": {"patience": 5},
        "l2_alone": {"l2": 0.001},
        "l2_on_base": {"patience": 5, "l2": 0.001},
    }
    raw["report"]["baseline"] = "base"
    assert fixed_strength_variants(parse_params(raw)) == {"l2": ("l2_on_base", 0.001)}


def test_an_end_of_a_grid_of_two_or_of_one_seed_is_no_sign() -> None:
    path = {s: {seed: run(seed, 0.3 + s, 0.5) for seed in range(3)} for s in (0.1, 0.2)}
    assert tune("l2", path, [0, 1, 2]).edges() == {}  # two strengths: every choice is an end
    three = {**path, 0.3: {seed: run(seed, 0.9, 0.5) for seed in range(3)}}
    assert tune("l2", three, [0, 1, 2]).edges() == {"l2": 0.1}
    assert tune("l2", three, [0]).edges() == {}  # one seed


ROUNDS = Schedule.of([0, 1, 2, 3, 4], SeedRounds(max=10, step=5))


def planted_grid(seeds: range, effect: float, rng: np.random.Generator) -> dict:
    """A grid of two strengths whose runs are `effect` below the baseline's 0.5 on validation
    and test alike (noise 0.02 per run), for `seeds`."""
    return {
        strength: {
            s: run(
                s,
                0.5 - effect + rng.normal(0, 0.02),
                test_loss=0.5 - effect + rng.normal(0, 0.02),
            )
            for s in seeds
        }
        for strength in (0.1, 0.2)
    }


def test_rounds_give_more_seeds_to_an_undecided_technique_at_every_strength() -> None:
    """'clear' helps by far more than the noise and is decided at the first look; 'slight'
    helps by about the noise, undecided on 5 seeds: the round trains it, at both strengths,
    and the baseline, on seeds 5–9, and nothing for 'clear'."""
    rng = np.random.default_rng(3)
    first = range(5)
    baseline = {s: run(s, 0.5 + rng.normal(0, 0.02), 0.5 + rng.normal(0, 0.02)) for s in first}
    paths = {
        "clear": planted_grid(first, 0.3, rng),
        "slight": planted_grid(first, 0.02, rng),
    }
    asked = []

    def train(need: dict[str, list[int]]):
        asked.append(need)
        added = {t: planted_grid(range(5, 10), 0.02, rng) for t in need if t != "baseline"}
        base = {s: run(s, 0.5 + rng.normal(0, 0.02), 0.5) for s in need["baseline"]}
        return added, base

    study = tuned_until_decided(ROUNDS, paths, baseline, SETTINGS, 0, train)
    assert asked == [{"baseline": [5, 6, 7, 8, 9], "slight": [5, 6, 7, 8, 9]}]
    outcomes = study.rounds.outcomes
    assert (outcomes["clear"].seeds, outcomes["clear"].stopped) == (5, "decided")
    assert outcomes["slight"].seeds == 10 and outcomes["baseline"].seeds == 10
    assert set(study.paths["slight"][0.2]) == set(range(10))
    tuned = {t.technique: t for t in study.tuned()}
    assert set(tuned["clear"].chosen) == set(range(5)) and set(tuned["slight"].chosen) == set(
        range(10)
    )
    # The test verdicts read each technique at the looks its seeds went through.
    verdicts, _ = tuned_verdicts(study.tuned(), study.baseline, SETTINGS, None, ROUNDS)
    assert verdicts["clear"]["test_loss"].looks_read == 1
    assert verdicts["slight"]["test_loss"].looks_read == 2
    assert verdicts["clear"]["test_loss"].verdict == "better"


def test_rounds_on_choices_made_on_noise_keep_the_family_wise_error() -> None:
    """Techniques with no effect at any strength, with seeds added in rounds (5, then 5 more
    while undecided, decided on the chosen runs' flattered validation numbers): the tuned
    verdicts on test are wrong in at most α of the studies."""
    rng = np.random.default_rng(11)
    studies, grid, techniques = 200, (0.1, 0.3, 0.5), ("a", "b", "c")
    wrong, went_on = 0, 0

    def draw(seed: int, effect: np.ndarray) -> RunRecord:
        common = 0.5 + effect[seed]
        return run(
            seed,
            common + rng.normal(0, 0.01),
            test_loss=common + rng.normal(0, 0.01),
            test_accuracy=0.9 - effect[seed] + rng.normal(0, 0.005),
            val_accuracy=0.9 - effect[seed] + rng.normal(0, 0.005),
        )

    for _ in range(studies):
        effect = rng.normal(0, 0.02, size=10)
        first = range(5)
        baseline = {s: draw(s, effect) for s in first}
        paths = {t: {g: {s: draw(s, effect) for s in first} for g in grid} for t in techniques}

        def train(need: dict[str, list[int]], effect: np.ndarray = effect):
            added = {
                t: {g: {s: draw(s, effect) for s in seeds} for g in grid}
                for t, seeds in need.items()
                if t != "baseline"
            }
            return added, {s: draw(s, effect) for s in need["baseline"]}

        study = tuned_until_decided(ROUNDS, paths, baseline, SETTINGS, 0, train)
        went_on += study.rounds.outcomes["baseline"].seeds == 10
        verdicts, _ = tuned_verdicts(study.tuned(), study.baseline, SETTINGS, None, ROUNDS)
        said = [c.verdict for v in verdicts.values() for c in v.values()]
        wrong += any(v not in (UNDECIDED, "equivalent") for v in said)
    assert went_on > 0  # the rounds did add seeds in some studies
    assert wrong / studies <= SETTINGS.alpha, wrong


def test_a_joint_grid_is_tuned_as_one_technique_and_its_ends_read_per_axis() -> None:
    """dropout × weight decay, 3 × 2 points: the planted best point of each seed is chosen,
    the tie goes to the weaker point, and dropout's largest strength, chosen by most seeds, is
    an end of its axis; weight decay's axis has two strengths, where an end is no sign."""
    best = {0: (0.5, 1.0), 1: (0.5, 0.1), 2: (0.3, 1.0)}
    grid = [(d, w) for d in (0.1, 0.3, 0.5) for w in (0.1, 1.0)]
    path = {
        point: {seed: run(seed, 0.3 if point == best[seed] else 0.4, 0.5) for seed in range(3)}
        for point in grid
    }
    tuned = tune("combined", path, [0, 1, 2], ("dropout", "weight_decay"))
    assert tuned.chosen == best
    assert tuned.edges() == {"dropout": 0.5}
    tie = {point: {0: run(0, 0.3, 0.5)} for point in grid}
    assert tune("combined", tie, [0], ("dropout", "weight_decay")).chosen == {0: (0.1, 0.1)}
