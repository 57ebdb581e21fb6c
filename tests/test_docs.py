"""The README and docs/ stay true to the project: findings copied from the report, not
retyped; every relative link leads to a file that exists."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_findings_are_the_gap_reports() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "readme_findings.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr + " (run `make readme`)"


def test_relative_links_lead_to_files_that_exist() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []


def test_the_readme_is_a_first_read() -> None:
    """Details belong in docs/: the README stays short enough to read in ten minutes."""
    assert len((REPO / "README.md").read_bytes()) <= 12 * 1024


def test_the_readme_shows_the_whole_example_network() -> None:
    """The README's example network is networks/example.py, every line after its docstring,
    so what a reader copies is what the tests train."""
    example = (REPO / "networks" / "example.py").read_text()
    code = example[example.index("from __future__") :]
    assert f"```python\n{code}```" in (REPO / "README.md").read_text()
