"""Copy the gap report's comparison table into the README, between its findings markers;
write what a study of its own with a larger seed budget decided (reports/budget/, `make
budget`) between its own, and what the tuned study found (reports/tuned/, `make sweep`).

The README's findings are the reports', not retyped: `make readme` runs this after a study,
and a test fails when the README differs from what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.analysis.comparisons import IDENTICAL, TOO_FEW
from pipeline.reports.tuned import shown_text

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- findings: from reports/gap_report.md -->", "<!-- end of findings -->"
BUDGET = "<!-- budget: from reports/budget/ -->", "<!-- end of budget -->"
TUNED = "<!-- tuned: from reports/tuned/ -->", "<!-- end of tuned -->"
COMPARED = {
    "loss_gap_last": "loss gap",
    "best_val_loss": "best val loss",
    "test_accuracy": "test accuracy",
}
HEADING = "## Change against"


def findings_table(report: str) -> str:
    """The lines of the report's table of changes against the baseline."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADING))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[first:end])


def between(text: str, markers: tuple[str, str], content: str) -> str:
    before, rest = text.split(markers[0], 1)
    _, after = rest.split(markers[1], 1)
    return f"{before}{markers[0]}\n{content}\n{markers[1]}{after}"


def with_findings(readme: str, report: str) -> str:
    return between(readme, (START, END), findings_table(report))


def is_decided(verdict: str) -> bool:
    """A verdict that says something: not undecided, not too few seeds, not withheld, not
    identical by construction."""
    return verdict not in ("undecided", TOO_FEW, IDENTICAL) and not verdict.startswith("no ")


def verdicts(summary: dict) -> dict[tuple[str, str], str]:
    return {
        (name, key): entry["vs_baseline"][key]["verdict"]
        for name, entry in summary["variants"].items()
        if "vs_baseline" in entry
        for key in COMPARED
    }


def budget_text(default: dict, larger: dict, rounds: dict) -> str:
    """What a study of its own with a larger budget decided, in sentences, and where its
    verdicts differ from the default study's: a decided verdict that another study decides
    otherwise is named (other seeds may decide otherwise: said, not hidden)."""
    before, after = verdicts(default), verdicts(larger)
    seeds = {name: entry["n_seeds"] for name, entry in larger["variants"].items()}
    open_there = sum(before[k] == "undecided" and after[k] != "undecided" for k in before)
    changed = [
        f"{name}'s {COMPARED[key]}: {verdict} → {after[name, key]}"
        for (name, key), verdict in before.items()
        if verdict != "undecided" and after[name, key] != verdict
    ]
    decided = [k for k, v in after.items() if is_decided(v)]
    on_test = sum(k[1] == "test_accuracy" for k in decided)
    identical = sum(v == IDENTICAL for v in after.values())
    step = rounds["looks"][1] - rounds["looks"][0]
    fewest, most = min(seeds.values()), max(seeds.values())
    took = f"{fewest} to {most} seeds" if fewest != most else f"{most} seeds each"
    lines = [
        f"A study of its own (seeds {rounds['seeds'][0]} on, `rounds: {{max: "
        f"{rounds['looks'][-1]}, step: {step}}}`, [report](reports/budget/gap_report.md)): "
        f"the variants took {took}; {len(decided)} of {len(after)} verdicts decided "
        f"({on_test} of {sum(k[1] == 'test_accuracy' for k in after)} on test accuracy), "
        f"{identical} identical by construction; {open_there} undecided in the default study "
        "are decided here."
    ]
    if changed:
        lines.append("Verdicts that differ from the default study's: " + "; ".join(changed) + ".")
    return "\n".join(lines)


def tuned_text(summary: dict) -> str:
    """The tuned study in one sentence: how many of its test verdicts are decided, at how many
    seeds, and the strength most seeds chose for each technique."""
    said = [c["verdict"] for entry in summary.values() for c in entry["vs_baseline"].values()]
    decided = sum(is_decided(v) for v in said)
    counts = sorted({len(entry["chosen"]) for entry in summary.values()})  # rounds add seeds
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    most = {name: max(e["wins"], key=lambda s, e=e: e["wins"][s]) for name, e in summary.items()}
    chosen = ", ".join(f"{name} {shown_text(s)}" for name, s in most.items())
    return (
        f"Tuned per seed on validation, judged on test "
        f"([report](reports/tuned/tuned.md)): {decided} of {len(said)} verdicts decided at "
        f"{seeds} seeds; chosen most: {chosen}."
    )


def main() -> None:
    readme = ROOT / "README.md"
    reports = ROOT / "reports"
    text = with_findings(readme.read_text(), (reports / "gap_report.md").read_text())
    budget = reports / "budget"
    if (budget / "summary.json").is_file():
        text = between(
            text,
            BUDGET,
            budget_text(
                json.loads((reports / "summary.json").read_text()),
                json.loads((budget / "summary.json").read_text()),
                json.loads((budget / "rounds.json").read_text()),
            ),
        )
    tuned = reports / "tuned" / "summary.json"
    if tuned.is_file():
        text = between(text, TUNED, tuned_text(json.loads(tuned.read_text())))
    if "--check" in sys.argv:
        sys.exit(0 if text == readme.read_text() else "README.md: findings differ from the report")
    readme.write_text(text)


if __name__ == "__main__":
    main()
