"""The gap report: how much each variant closes the generalization gap, with evidence.

Built from what the train stages wrote (never from MLflow): `reports/summary.json` (every
statistic, built here) and `reports/gap_report.md` (`gap_markdown`). Definitions are in
`metrics`; a change against the baseline and its verdict are `comparisons`'s, corrected for the
number of variants.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from ..analysis.comparisons import Comparison, ranking
from ..analysis.seed_rounds import Rounds
from ..analysis.stats import pairing_correlation
from ..core.config import ReportConfig
from ..core.metrics import COMPARED, REPORT_SUMMARY
from ..core.records import MissingRun
from ..outputs.variant_files import VariantRuns
from .gap_markdown import markdown


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
        # only where it is official, so that other reports' conditions stay as they were
        **({"test_split": "official"} if meta.get("test_split") == "official" else {}),
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


def summarise(
    variants: Sequence[VariantRuns],
    diffs: dict[str, dict[str, Comparison]],
    cond: dict[str, Any],
    missing: Sequence[MissingRun],
    done: Rounds,
    correlations: dict[str, float | None],
) -> dict[str, Any]:
    """`reports/summary.json`: every statistic of every variant; `correlations` is `pairing`'s."""
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
