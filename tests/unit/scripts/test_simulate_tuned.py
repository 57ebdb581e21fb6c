"""scripts/simulate_tuned.py: the tuned study simulated through the product's own tuning, rounds
and verdicts; its table, its judgement of a verdict, and what it measures where the answer is
known (a huge effect is found; the choice on validation flatters validation)."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.simulate_tuned import (
    GRID,
    SCENARIOS,
    main,
    picked,
    simulate,
    truths,
    wrong,
)


def test_the_table_has_a_row_per_scenario_with_fractions_in_its_cells(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--studies", "5", "--seed", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("5 studies per row;") and "α 0.05" in lines[0]
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[0].startswith("| scenario | studies | family-wise wrong")
    body = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]
    assert [cells[0] for cells in body] == [name for name, _ in SCENARIOS]
    for cells, (_, effect) in zip(body, SCENARIOS, strict=True):
        assert cells[1] == "5"
        fwer = float(cells[2].split()[0])
        assert 0 <= fwer <= 1
        assert (cells[3] == "–") == (effect == 0)
        assert 5 <= float(cells[5]) <= 10  # seeds per technique: 5 first, at most 10


def test_a_verdict_is_wrong_where_the_truth_has_not_its_direction_or_exceeds_delta() -> None:
    assert wrong("better", "test_loss", 0.0)
    assert not wrong("better", "test_loss", -0.01)
    assert wrong("better", "test_accuracy", -0.01)  # higher accuracy is better
    assert wrong("closes the gap", "test_gap", 0.0)
    assert not wrong("widens the gap", "test_gap", 0.005)
    assert not wrong("undecided", "test_loss", 0.5)
    # equivalent: wrong only beyond the measure's δ (loss 0.02, accuracy 0.01)
    assert not wrong("equivalent", "test_loss", 0.015)
    assert wrong("equivalent", "test_loss", 0.025)
    assert wrong("equivalent", "test_accuracy", 0.015)


def test_the_tuned_truth_is_the_effect_times_the_chance_of_picking_its_strength() -> None:
    assert picked(0.0) == pytest.approx(1 / len(GRID))
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, size=(200_000, len(GRID)))
    noise[:, 0] -= 0.02
    assert picked(0.02) == pytest.approx(np.mean(noise.argmin(axis=1) == 0), abs=0.005)
    truth = truths(0.02)
    assert truth["a"]["test_loss"] == pytest.approx(-0.02 * picked(0.02))
    assert truth["a"]["test_accuracy"] == -truth["a"]["test_loss"]
    assert set(truth["b"].values()) == {0.0}


def test_a_huge_effect_is_called_better_and_the_choice_flatters_validation() -> None:
    tally = simulate(0.3, 20, np.random.default_rng(1))
    assert tally.power >= 0.9
    # No effect anywhere: the best of 4 strengths beats the baseline on validation in most
    # studies, though nothing is better.
    null = simulate(0.0, 20, np.random.default_rng(2))
    assert null.flattery > 0.75
