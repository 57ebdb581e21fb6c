"""The gap report's sentences: what the verdicts speak for, how sure they are, and each
variant's verdicts in words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..analysis.comparisons import Comparison, Family
from ..analysis.seed_rounds import Rounds
from ..core.metrics import COMPARED, METRICS
from ..outputs.variant_files import VariantRuns
from .tables import detectable_text, interval, magnitude


def population_text(cond: dict[str, Any]) -> str:
    """Which population the verdicts speak for, in one sentence."""
    if cond.get("test_split") == "official":  # the test split is the dataset's own test set
        tested = f"tested on the dataset's official test set ({cond['sizes']['test']} examples)"
        if cond["splits"] == "per_seed":
            return (
                f"The verdicts speak for train/val splits drawn from the dataset's official "
                f"train set, {tested}: each seed draws its own train/val split, which every "
                "variant shares under that seed, as well as its initial weights, batch order "
                "and dropout."
            )
        return (
            f"The verdicts speak for this one train/val split of the dataset's official train "
            f"set, {tested}: seeds vary the initial weights, batch order and dropout, not "
            "which examples are trained or validated on."
        )
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


def pairing_text(correlations: dict[str, float | None]) -> str:
    shown = [f"{METRICS[k].label} {r:+.2f}" for k, r in correlations.items() if r is not None]
    if not shown:
        return ""
    return (
        " Pairing by seed: the variant–baseline correlation over seeds, mean over the "
        f"variants, is {', '.join(shown)}; the higher, the more of a seed's spread leaves "
        "the difference."
    )


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
