"""The processor a run is made on, and what `make study` says before it trains where the
committed results were made on another one (`python -m pipeline machine-note`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.training.device import processor
from tests.support.repo import command_env

CPUINFO = Path("/proc/cpuinfo")
HERE = "<this machine's CPU>"


def model_name() -> str | None:
    """This machine's CPU as /proc/cpuinfo names it, read apart from the code under test."""
    if not CPUINFO.is_file():
        return None
    found = re.search(r"^model name\s*:\s*(.+?)\s*$", CPUINFO.read_text(), re.MULTILINE)
    return found.group(1) if found else None


@pytest.mark.skipif(model_name() is None, reason="no model name in /proc/cpuinfo")
def test_the_cpu_is_named_as_proc_cpuinfo_names_it() -> None:
    assert processor("cpu") == model_name()
    assert processor() == processor("cpu")


def machine_note(root: Path, *python_flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "pipeline", "machine-note"],
        cwd=root,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def commit_summary(root: Path, conditions: dict) -> None:
    (root / "reports").mkdir()
    summary = {"conditions": {"dataset": "mnist-5k", "torch": "2.14.1", **conditions}}
    (root / "reports" / "summary.json").write_text(json.dumps(summary))


def test_results_made_on_another_cpu_get_a_note_and_no_torch(tmp_path: Path) -> None:
    commit_summary(tmp_path, {"device": ["cpu"], "processor": ["Other CPU @ 9.99GHz"]})
    result = machine_note(tmp_path, "-X", "importtime")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"note: the committed results were made on Other CPU @ 9.99GHz; this machine is "
        f"{processor('cpu')}. DVC retrains what its cache lacks, the numbers will differ in the "
        "last digits (other matrix kernels round differently), and `git status` will show the "
        "changed outputs.\n"
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert not {name for name in imported if name.split(".")[0] == "torch"}


@pytest.mark.parametrize(
    "conditions",
    [
        {"device": ["cpu"], "processor": [HERE]},
        {"device": ["cpu"]},  # a report from before processors were kept
        {"device": ["cpu"], "processor": []},
        # made on a GPU: this machine's would take torch to tell, so no note
        {"device": ["cuda:0"], "processor": ["Some GPU 80GB"]},
        None,  # no committed summary.json
        "not JSON",
    ],
    ids=["this-cpu", "no-processor-key", "none-recorded", "gpu", "no-summary", "unreadable"],
)
def test_no_note_where_nothing_tells_of_another_cpu(
    tmp_path: Path, conditions: dict | str | None
) -> None:
    if isinstance(conditions, dict):
        if conditions.get("processor") == [HERE]:
            conditions = {**conditions, "processor": [processor("cpu")]}
        commit_summary(tmp_path, conditions)
    elif conditions == "not JSON":
        (tmp_path / "reports").mkdir()
        (tmp_path / "reports" / "summary.json").write_text("{ not json")
    result = machine_note(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
