"""The README and docs/ stay true to the project: findings copied from the report, not
retyped; every relative link leads to a file that exists."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.repo import REPO

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


def layout_in_docs() -> dict[str, set[str]]:
    """docs/layout.md's package tree: each layer folder and the modules listed under it."""
    block = (REPO / "docs" / "layout.md").read_text().split("```")[1]
    listed: dict[str, set[str]] = {}
    for line in block.splitlines():
        if folder := re.match(r"(\w+)/\s", line):
            layer = listed.setdefault(folder.group(1), set())
        elif line.startswith("  "):
            layer.update(re.findall(r"(\w+\.py)\b", line.split("  ")[1]))
    return listed


def test_the_layout_doc_lists_every_module_of_the_package() -> None:
    """A module added, moved or removed without docs/layout.md fails here, not in a reader."""
    package = REPO / "pipeline"
    tree = {
        folder.name: {p.name for p in folder.glob("*.py")} - {"__init__.py"}
        for folder in package.iterdir()
        if (folder / "__init__.py").is_file()
    }
    assert layout_in_docs() == tree
    assert {p.name for p in package.glob("*.py")} == {"__init__.py", "__main__.py"}
