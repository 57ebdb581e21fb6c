"""Fixtures every test folder may use: a scratch copy of the repository with tiny settings
(`tiny_repo`) and a runner of commands inside it (`run_in`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.repo import TINY_PARAMS, Runner, make_runner, scratch_repo


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return scratch_repo(tmp_path / "repo", TINY_PARAMS)


@pytest.fixture
def run_in(tiny_repo: Path) -> Runner:
    return make_runner(tiny_repo)
