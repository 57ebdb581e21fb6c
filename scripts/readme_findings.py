"""Copy the gap report's comparison table into the README, between its findings markers.

The README's findings are the report's, not retyped: `make readme` runs this after a study,
and a test fails when the README's table differs from reports/gap_report.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- findings: from reports/gap_report.md -->", "<!-- end of findings -->"
HEADING = "## Change against"


def findings_table(report: str) -> str:
    """The lines of the report's table of changes against the baseline."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADING))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[first:end])


def with_findings(readme: str, report: str) -> str:
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{findings_table(report)}\n{END}{after}"


def main() -> None:
    readme = ROOT / "README.md"
    text = with_findings(readme.read_text(), (ROOT / "reports" / "gap_report.md").read_text())
    if "--check" in sys.argv:
        sys.exit(0 if text == readme.read_text() else "README.md: findings differ from the report")
    readme.write_text(text)


if __name__ == "__main__":
    main()
