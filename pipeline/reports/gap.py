"""The gap report: how much each variant closes the generalization gap, with evidence.

Built from what the train stages wrote (never from MLflow): `reports/gap_report.md`,
`reports/summary.json` (every statistic) and the figures. Definitions are in `metrics`; a change
against the baseline and its verdict are `analysis`'s, corrected for the number of variants.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from ..analysis import Comparison, Family, ranking
from ..config import ReportConfig
from ..metrics import COMPARED, METRICS, REPORT_SUMMARY
from ..outputs import VariantRuns
from ..records import MissingRun
from ..rounds import DRIVING, Rounds
from ..stats import pairing_correlation
from .tables import detectable_text, interval, magnitude, mean_sd, table, verdict_cell

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


def network_of(hyperparameters: dict[str, Any]) -> str:
    """The network in words: `MLP [512, 512]`, `CNN channels [32, 64], dense [128]`, or the
    user's function."""
    network = hyperparameters.get("network", "mlp")
    if network == "mlp":
        return f"MLP {hyperparameters['hidden_sizes']}"
    if network == "cnn":
        return (
            f"CNN channels {hyperparameters['channels']}, dense {hyperparameters['hidden_sizes']}"
        )
    return f"network {network}"


def population_text(cond: dict[str, Any]) -> str:
    """Which population the verdicts speak for, in one sentence."""
    if cond["splits"] == "per_seed":
        return (
            f"The verdicts speak for splits drawn from this pool of {cond['pool_size']} "
            "examples: each seed draws its own train/val/test split, which every variant "
            "shares under that seed, as well as its initial weights, batch order and dropout."
        )
    return (
        "The verdicts speak for this one split of the data: seeds vary the initial weights, "
        "batch order and dropout, not which examples are trained, validated or tested on."
    )


def conditions(
    meta: dict[str, Any], variants: Sequence[VariantRuns], settings: ReportConfig, done: Rounds
) -> dict:
    """What the numbers rest on: data, seeds (and the looks they were read at), network and
    training, device and processor, versions, and the verdicts' error rate and margins."""
    first = variants[0].records[0].hyperparameters
    return {
        "dataset": meta["dataset"],
        "sizes": meta["sizes"],
        "label_noise": meta["label_noise"],
        "splits": meta["splits"],
        "pool_size": meta["pool_size"],
        "seeds": sorted({r.seed for v in variants for r in v.records}),
        "looks": list(done.schedule.looks),
        "network": network_of(first),
        "epochs": first["epochs"],
        "batch_size": first["batch_size"],
        "lr": first["lr"],
        "device": sorted({r.device for v in variants for r in v.records}),
        "processor": sorted({r.processor for v in variants for r in v.records} - {""}),
        "torch": version("torch"),
        "python": platform.python_version(),
        "baseline": settings.baseline,
        "alpha": settings.alpha,
        "equivalence": settings.equivalence.model_dump(),
    }


def processor_text(processors: Sequence[str]) -> str:
    """For the conditions' line: the processors the runs ran on, if they were recorded."""
    if not processors:
        return ""
    return f", processor{'s' if len(processors) > 1 else ''} {' and '.join(processors)}"


def confidence_text(diffs: dict[str, dict[str, Comparison]]) -> str:
    """Each interval's confidence, as a percentage: 1 − α/(m·M), over all its looks."""
    first = next((c for comparisons in diffs.values() for c in comparisons.values()), None)
    return "–" if first is None else f"{100 * first.family.confidence:.2f} %"


def spending_text(done: Rounds) -> str:
    """How each comparison's share of α is spent over the looks: `22 % at 3 seeds, 78 % at 5`."""
    looks = done.schedule.looks
    shares = Family(1, 1.0, done.schedule.seeds, looks).shares()
    return ", ".join(
        f"{share:.1%} at {n}{' seeds' if i == 0 else ''}"
        for i, (n, share) in enumerate(zip(looks, shares, strict=True))
    )


def margins_text(margins: dict[str, float]) -> str:
    """δ of each compared measure, in its own units."""
    return ", ".join(
        f"{METRICS[k].label} {magnitude(margins[k], METRICS[k], unit=True)}" for k in COMPARED
    )


def detectable_note(c: Comparison) -> str:
    """For a sentence: what an undecided comparison's seeds would detect, and how many seeds
    would decide the difference seen; else nothing."""
    shown = detectable_text(c, unit=True)
    if shown is None:
        return ""
    needed = c.seeds_to_decide
    decide = (
        f"; about {needed} seeds would decide a difference this size 80 % of the time"
        if needed is not None
        else ""
    )
    return f"; these seeds would detect {shown}{decide}"


def pairing(variants: Sequence[VariantRuns], baseline: str) -> dict[str, float | None]:
    """Per compared measure, the variant–baseline correlation over paired seeds, averaged over
    the variants where it exists (None where none): what the pairing by seed buys."""
    base = next(v for v in variants if v.name == baseline)
    out: dict[str, float | None] = {}
    for key in COMPARED:
        each = [pairing_correlation(v.per_seed(key), base.per_seed(key)) for v in variants]
        found = [r for v, r in zip(variants, each, strict=True) if v is not base and r == r]
        out[key] = sum(found) / len(found) if found else None
    return out


def pairing_text(correlations: dict[str, float | None]) -> str:
    shown = [f"{METRICS[k].label} {r:+.2f}" for k, r in correlations.items() if r is not None]
    if not shown:
        return ""
    return (
        " Pairing by seed: the variant–baseline correlation over seeds, mean over the "
        f"variants, is {', '.join(shown)}; the higher, the more of a seed's spread leaves "
        "the difference."
    )


def summarise(
    variants: Sequence[VariantRuns],
    diffs: dict[str, dict[str, Comparison]],
    cond: dict[str, Any],
    missing: Sequence[MissingRun],
    done: Rounds,
    correlations: dict[str, float | None],
) -> dict[str, Any]:
    """The JSON that DVC reads as the study's metrics; `correlations` is `pairing`'s."""
    out: dict[str, Any] = {"conditions": cond, "variants": {}}
    for v in variants:
        entry: dict[str, Any] = {
            "n_seeds": len(v.records),
            "stopped": done.outcomes[v.name].stopped,
        }
        for key in REPORT_SUMMARY:
            mean, sd = v.mean_sd(key)
            entry[key] = {"mean": mean, "sd": sd}
        if v.name in diffs:
            entry["vs_baseline"] = {k: c.to_json() for k, c in diffs[v.name].items()}
        out["variants"][v.name] = entry
    out["ranking_by_best_val_loss"] = ranking(variants)
    out["pairing_correlation"] = correlations
    out["missing_runs"] = [m.to_json() for m in missing]
    return out


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


def in_words(
    variants: Sequence[VariantRuns], diffs: dict[str, dict[str, Comparison]], baseline: str
) -> list[str]:
    """One sentence per variant: its verdict on the gap, and on test accuracy. A gap closed
    past zero (val loss below train loss, as label noise can make it) is named so, not given
    as a share above 100 %."""
    by_name = {v.name: v for v in variants}
    base_gap = by_name[baseline].mean_sd("loss_gap_last")[0]
    lines = []
    for name, comparisons in diffs.items():
        gap = comparisons["loss_gap_last"]
        if gap.withheld:
            lines.append(f"- **{name}**: {gap.withheld}; the seeds left would flatter it.")
            continue
        d = gap.diff
        shown = f"{100 * gap.family.confidence:.2f} % interval [{d.low:+.3f}, {d.high:+.3f}]"
        if gap.verdict in gap.metric.words:
            own_gap = by_name[name].mean_sd("loss_gap_last")[0]
            if own_gap < 0:
                share = f", past zero: its val loss is {-own_gap:.3f} below its train loss"
            elif base_gap > 0:
                share = f" ({abs(d.mean) / base_gap:.0%} of the baseline's gap)"
            else:
                share = ""
            sentence = f"- **{name}** {gap.verdict} by {abs(d.mean):.3f}{share}, {shown}"
        else:
            sentence = (
                f"- **{name}**: loss gap {gap.verdict} ({d.mean:+.3f}, {shown}"
                f"{detectable_note(gap)})"
            )
        acc = comparisons["test_accuracy"]
        if acc.identical:
            sentence += "; test accuracy identical on every seed (the baseline's own weights)."
        else:
            sentence += (
                f"; test accuracy {acc.verdict} ({interval(acc.diff, acc.metric)} pp"
                f"{detectable_note(acc)})."
            )
        lines.append(sentence)
    return lines


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


def gap_report(
    variants: Sequence[VariantRuns],
    labels: dict[str, str],
    meta: dict[str, Any],
    settings: ReportConfig,
    missing: Sequence[MissingRun],
    done: Rounds,
) -> tuple[dict[str, Any], str]:
    """(summary.json, gap_report.md) of the finished variants, their seeds as `done` says."""
    margins = settings.equivalence.model_dump()
    diffs = done.compare(variants, settings.baseline, COMPARED, margins)
    cond = conditions(meta, variants, settings, done)
    correlations = pairing(variants, settings.baseline)
    return summarise(variants, diffs, cond, missing, done, correlations), markdown(
        variants, labels, diffs, cond, missing, done, correlations
    )
