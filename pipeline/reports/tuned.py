"""The tuned report: each technique at the strength its validation loss chose within every
seed, against the baseline on the test split (`analysis.tuning`): `reports/tuned/`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..analysis.comparisons import Comparison
from ..analysis.seed_rounds import Rounds
from ..analysis.tuning import TunedTechnique
from ..core.config import Params, Strength, strength_text
from ..core.metrics import METRICS, TUNED
from ..outputs.sweep_files import strength_json
from .tables import interval, table, verdict_cell


def chosen_rows(tuned: Sequence[TunedTechnique]) -> list[dict[str, Any]]:
    """`chosen.csv`: a row per technique and seed, the strength its validation loss chose."""
    return [
        {"technique": t.technique, "seed": seed, "strength": strength_text(strength)}
        for t in tuned
        for seed, strength in sorted(t.chosen.items())
    ]


def summary(
    tuned: Sequence[TunedTechnique],
    verdicts: dict[str, dict[str, Comparison]],
    at_fixed: dict[str, dict[str, Comparison]],
    rounds: Rounds,
) -> dict[str, Any]:
    """`summary.json`: per technique its grid, its seeds and why it has that many, each seed's
    choice, how often each strength won, the end of the grid most seeds chose (if any), each
    test measure against the baseline, and the same at the study variant's fixed strength
    where there is one."""
    return {
        t.technique: {
            "grid": [strength_json(s) for s in t.grid],
            "seeds": rounds.outcomes[t.technique].seeds,
            "stopped": rounds.outcomes[t.technique].stopped,
            "chosen": {str(seed): strength_json(s) for seed, s in sorted(t.chosen.items())},
            **({"axes": list(t.axes)} if t.axes else {}),
            "wins": {strength_text(s): n for s, n in t.wins().items()},
            "edges": t.edges(),
            "vs_baseline": {key: c.to_json() for key, c in verdicts[t.technique].items()},
            **(
                {"fixed_vs_baseline": {k: c.to_json() for k, c in at_fixed[t.technique].items()}}
                if t.technique in at_fixed
                else {}
            ),
        }
        for t in tuned
    }


def _more_seeds(params: Params, rounds: Rounds) -> str:
    """How the rounds added seeds, and how many each technique got, if they did."""
    if not rounds.schedule.adaptive or params.rounds is None:
        return ""
    got = ", ".join(
        f"{name} {o.seeds} ({o.stopped})"
        for name, o in rounds.outcomes.items()
        if name != params.report.baseline
    )
    return (
        f", then, while a technique's verdicts were undecided, {params.rounds.step} more at a "
        f"time (every strength, and the baseline) up to {params.rounds.max}: {got}; whether a "
        "technique goes on is decided on validation, never on test"
    )


def _joint_words(tuned: Sequence[TunedTechnique]) -> list[str]:
    """What the joint grid is, if there is one: its techniques, a point's parts in order."""
    return [
        f"`{t.technique}` is a joint grid (`sweep.{t.technique}`): every combination of the "
        f"strengths of {' and '.join(t.axes)} is a point, written ({', '.join(t.axes)}), "
        "tuned as one technique.\n"
        for t in tuned
        if t.axes
    ]


def _wins(t: TunedTechnique) -> str:
    return ", ".join(f"{shown(s)} ×{n}" for s, n in t.wins().items() if n)


def shown(strength: Strength) -> str:
    """A strength in the report: `0.001`, a joint grid's point `(0.3, 1)`."""
    return shown_text(strength_text(strength))


def shown_text(text: str) -> str:
    """A strength as names and summary.json write it (`0.3,1` for a joint grid's point), as
    the report writes it: (0.3, 1)."""
    return f"({text.replace(',', ', ')})" if "," in text else text


def _change(c: Comparison) -> str:
    return f"{interval(c.diff, c.metric)}: {verdict_cell(c)}"


def test_split_words(params: Params) -> str:
    """What the test split is, so what the verdicts speak for."""
    if params.data.test_split == "official":
        return "the dataset's official test set, the same for every seed: the verdicts speak for it"
    if params.data.splits == "fixed":
        return "one split of the pool, the same for every seed: the verdicts speak for that split"
    return "which is each seed's own part of the pool, apart from what the choice read"


def markdown(
    tuned: Sequence[TunedTechnique],
    verdicts: dict[str, dict[str, Comparison]],
    params: Params,
    fixed: dict[str, tuple[str, float]],
    at_fixed: dict[str, dict[str, Comparison]],
    rounds: Rounds,
) -> str:
    seeds = params.train.seeds
    alpha = params.report.alpha
    lines = [
        "# Each technique at its best strength",
        "",
        f"Each technique on top of `{params.report.baseline}`, trained at every strength of its "
        f"grid (`sweep` in params.yaml) for each of seeds {seeds}"
        f"{_more_seeds(params, rounds)}. Within each seed, the "
        "strength of lowest validation loss (at its best epoch) is chosen; the technique's "
        "result for that seed is the chosen run's test split, evaluated once with the weights "
        f"of that epoch. The choice never reads the test split, {test_split_words(params)}. "
        "A chosen run's validation numbers flatter it (the best of several looks "
        "better than it is), so the verdicts rest on test measures only: the test loss gap "
        "(test loss − train loss at the best epoch), the test loss and the test accuracy.",
        "",
        *_joint_words(tuned),
        "Beneath a tuned technique, in italics, the study's variant that is the technique alone "
        "at one hand-picked strength, where there is one, on the same measures and on the "
        "seeds the study gave it (its rounds included).",
        "",
        f"Changes against the baseline are paired by seed; their intervals hold together for "
        f"the whole table ({len(tuned) + len(at_fixed)} rows × {len(TUNED)} measures, "
        f"α = {alpha:g}), "
        "with the gap report's verdicts: equivalent where two one-sided tests put the change "
        "within ±δ, else better or worse where the interval excludes zero, else undecided "
        "(with the difference its seeds would detect).",
        "",
    ]
    header = [
        "technique",
        "strength (seeds)",
        *(f"Δ {METRICS[k].label}" for k in TUNED[:-1]),
        "Δ test accuracy (pp)",
    ]
    rows = []
    for t in tuned:
        rows.append([t.technique, _wins(t), *(_change(verdicts[t.technique][k]) for k in TUNED)])
        if t.technique in at_fixed:
            name, strength = fixed[t.technique]
            rows.append(
                [
                    f"*{name}*",
                    f"*{strength:g} (fixed)*",
                    *(_change(at_fixed[t.technique][k]) for k in TUNED),
                ]
            )
    lines += [*table(header, rows), ""]
    edges = [(t, axis, end) for t in tuned for axis, end in t.edges().items()]
    for t, axis, end in edges:
        i = t.axes.index(axis) if t.axes else None
        values = sorted({s if i is None else s[i] for s in t.grid})
        where = f"{t.technique}" if i is None else f"{t.technique}, its {axis}"
        lines.append(
            f"- **{where}**: most seeds chose {end:g}, an end of its grid "
            f"({values[0]:g} … {values[-1]:g}): its best strength may lie beyond it; widen "
            "the grid (`sweep` in params.yaml) and run again."
        )
    if edges:
        lines.append("")
    return "\n".join(lines)
