"""The gap report as markdown, `reports/gap_report.md`: the conditions, the tables, the verdicts in
words (`gap_sentences`), the seeds the rounds added, missing runs and the figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..analysis.comparisons import Comparison, ranking
from ..analysis.seed_rounds import DRIVING, Rounds
from ..core.metrics import COMPARED, METRICS
from ..core.records import MissingRun
from ..outputs.variant_files import VariantRuns
from .gap_sentences import (
    confidence_text,
    in_words,
    margins_text,
    pairing_text,
    population_text,
    processor_text,
    spending_text,
)
from .tables import interval, mean_sd, table, verdict_cell

# The first table: the state at the end of training, and the best epoch's scores.
END_OF_TRAINING = (
    "train_loss_last",
    "val_loss_last",
    "loss_gap_last",
    "accuracy_gap_last",
    "best_val_loss",
    "test_accuracy",
)


FIGURES = (
    ("Learning curves", "learning_curves"),
    ("Loss gap per epoch", "loss_gap"),
    ("Final gap per variant", "final_gap"),
    ("Weight magnitudes", "weight_magnitudes"),
)


def markdown(
    variants: Sequence[VariantRuns],
    labels: dict[str, str],
    diffs: dict[str, dict[str, Comparison]],
    cond: dict[str, Any],
    missing: Sequence[MissingRun],
    done: Rounds,
    correlations: dict[str, float | None],
) -> str:
    baseline = cond["baseline"]
    n_seeds = len(cond["seeds"])
    looks = len(done.schedule.looks)
    if done.schedule.adaptive:
        seeds_text = (
            f"seeds added in rounds until decided: {done.schedule.looks[0]} to "
            f"{done.schedule.looks[-1]} per variant (*Seeds* below)"
        )
    else:
        how_many = "some runs missing" if missing else f"{n_seeds} per variant"
        seeds_text = f"seeds {cond['seeds']} ({how_many})"
    lines = [
        "# Generalization gap report",
        "",
        f"Dataset **{cond['dataset']}** (train {cond['sizes']['train']}, val "
        f"{cond['sizes']['val']}, test {cond['sizes']['test']}; label noise "
        f"{cond['label_noise']:g}), {cond['network']}, {cond['epochs']} epochs, batch "
        f"{cond['batch_size']}, lr {cond['lr']:g}, {seeds_text}, "
        f"device {', '.join(cond['device'])}{processor_text(cond['processor'])}, "
        f"torch {cond['torch']}, Python {cond['python']}.",
        "",
        "Losses are the data loss (cross-entropy, eval mode, no penalty) over the whole split. "
        "*Loss gap* = val loss − train loss; *accuracy gap* = train − val accuracy; both at the "
        "end of training (the last epoch trained). Test accuracy uses the weights of the epoch "
        "of lowest val loss. Values are mean ± sd over seeds. " + population_text(cond),
        "",
        *missing_section(missing),
        *seeds_section(done),
        "## Gap at the end of training",
        "",
    ]
    header = [
        "variant",
        "regularization",
        "train loss",
        "val loss",
        "loss gap",
        "accuracy gap",
        "best val loss",
        "test accuracy",
    ]
    rows = []
    for v in variants:
        name = v.name if len(v.records) == n_seeds else f"{v.name} (n={len(v.records)})"
        rows.append([name, labels[v.name], *(mean_sd(*v.mean_sd(k)) for k in END_OF_TRAINING)])
    lines += table(header, rows)
    lines += [
        "",
        f"## Change against `{baseline}` (paired by seed, corrected for {len(diffs)} variants "
        f"× {len(COMPARED)} measures)",
        "",
        "Each cell: mean of (variant − baseline) over seeds [t-interval at "
        f"{confidence_text(diffs)}], n = "
        + (
            f"{n_seeds}"
            if not missing
            else f"{n_seeds} unless a cell says less (the seeds both have finished)"
        )
        + f". The intervals of the whole table hold together with "
        f"{100 * (1 - cond['alpha']):g} % confidence (Bonferroni over its {len(diffs)} "
        f"variants × {len(COMPARED)} measures"
        + (
            f"; each comparison's share spent over the {looks} looks of the rounds "
            f"({spending_text(done)}), its interval the intersection of its looks' intervals"
            if looks > 1
            else ""
        )
        + "). A verdict reads its intervals: *equivalent* where two one-sided tests at the "
        f"same level put the difference within ±δ ({margins_text(cond['equivalence'])}); "
        "else better or worse (for the gap: closes or widens it) where the interval excludes "
        "zero; *identical on every seed* where the two are equal bit for bit (the same "
        "weights: no finding); *undecided* otherwise, with the smallest difference these seeds "
        "would detect 80 % of the time. Per-seed values: [per_seed.csv](per_seed.csv)."
        + pairing_text(correlations),
        "",
    ]
    header = [
        "variant",
        "Δ loss gap",
        "verdict",
        "Δ best val loss",
        "verdict",
        "Δ test accuracy (pp)",
        "verdict",
    ]
    rows = []
    for name, comparisons in diffs.items():
        cells = [name]
        for key in COMPARED:
            c = comparisons[key]
            shown = "0 on every seed" if c.identical else interval(c.diff, c.metric)
            if 2 <= c.diff.n < n_seeds:
                shown += f" (n={c.diff.n})"
            cells += [shown, verdict_cell(c)]
        rows.append(cells)
    lines += table(header, rows)
    lines += ["", "![Verdicts: each change with its interval](figures/verdicts.png)"]
    lines += ["", "## In words", "", *in_words(variants, diffs, baseline)]
    lines += [
        "",
        "Ranked by mean best val loss (lowest first; ties keep the order of params.yaml; "
        "neighbours may not differ clearly): "
        + ", ".join(f"{i}. {name}" for i, name in enumerate(ranking(variants), start=1))
        + "."
        + "".join(
            f" Left out: {v.name}, which diverged on seed(s) {v.diverged_seeds}."
            for v in variants
            if v.diverged_seeds
        ),
        "",
        "## Gap at the best epoch",
        "",
    ]
    rows = [
        [
            v.name,
            mean_sd(*v.mean_sd("best_epoch"), digits=METRICS["best_epoch"].digits),
            *(
                mean_sd(*v.mean_sd(k))
                for k in ("loss_gap_best", "accuracy_gap_best", "near_zero_fraction")
            ),
        ]
        for v in variants
    ]
    lines += table(["variant", "best epoch", "loss gap", "accuracy gap", "near-zero weights"], rows)
    lines += [
        "",
        "Near-zero weights: fraction of linear-layer weights with |w| < 1e-3 in the kept model.",
        "",
        "## Figures",
        "",
    ]
    for title, name in FIGURES:
        lines += [f"![{title}](figures/{name}.png)", ""]
    return "\n".join(lines)


def seeds_section(done: Rounds) -> list[str]:
    """With seeds added in rounds: each variant's seeds and why it stopped."""
    if not done.schedule.adaptive:
        return []
    labels = [METRICS[k].label for k in DRIVING]
    driving = ", ".join(labels[:-1]) + " and " + labels[-1]
    rows = [[name, str(o.seeds), o.stopped] for name, o in done.outcomes.items()]
    return [
        "## Seeds",
        "",
        f"Seeds were added in rounds: {done.schedule.looks[0]} for every variant, then more for "
        f"each variant whose verdicts on {driving} were still undecided (and for the baseline "
        f"they pair with), looking at {', '.join(map(str, done.schedule.looks))} seeds. Test "
        "accuracy never drives a choice; val accuracy, read with test accuracy's δ, does, so "
        "that test accuracy gets the seeds its validation proxy needs. Each "
        "comparison's error rate is spent over every look the rounds could make, most at the "
        "last, and its interval is the intersection of its looks' intervals: looking after "
        "each round does not raise the error rate, and a verdict once decided stays decided.",
        "",
        *table(["variant", "seeds", "stopped because"], rows),
        "",
    ]


def missing_section(missing: Sequence[MissingRun]) -> list[str]:
    """The runs that did not finish, by name, above every table that lacks them."""
    if not missing:
        return []
    return [
        "## Missing runs",
        "",
        f"{len(missing)} run(s) did not finish and are left out of every table below; each "
        "comparison pairs only the seeds that both sides have.",
        "",
        *(f"- **{m.run_name}**: {m.reason}" for m in missing),
        "",
    ]
