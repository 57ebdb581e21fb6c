"""The seeds added in rounds: `rounds/<variant>/seed<k>/`, each its record (history and what it
was trained with included) and kept weights; and `rounds/rounds.json`, what the rounds did."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from typing import Any

from ..core.files import folder_into, json_text, write_atomic
from ..core.paths import Layout
from ..core.records import RunRecord


def write_round_seed(layout: Layout, record: RunRecord, made_with: str) -> None:
    """A seed the rounds added: `rounds/<variant>/seed<k>/` swapped in whole, with its record,
    its history and `made_with` (what decides whether a later run of the rounds may reuse it),
    and its kept weights. Written as soon as it has trained: an interrupted round keeps it."""
    with folder_into(layout.round_seed(record.variant, record.seed)) as staging:
        entry = {**record.to_json(), "history": record.history, "made_with": made_with}
        (staging / "record.json").write_text(json_text(entry, indent=1))
        for name, content in record.model_files.items():
            (staging / name).write_bytes(content)
    write_atomic(layout.round_log(record.variant, record.seed), json_text(record.provenance()))


def read_round_seeds(layout: Layout, variant: str) -> dict[int, tuple[str, RunRecord]]:
    """The seeds the rounds have added to `variant`: seed -> (made_with, record)."""
    found = {}
    for path in sorted(layout.round_seeds(variant).glob("seed*/record.json")):
        entry = json.loads(path.read_text())
        found[int(entry["seed"])] = (
            str(entry["made_with"]),
            RunRecord.from_json(entry, entry["history"]),
        )
    return found


def write_rounds(layout: Layout, record: dict[str, Any], kept: dict[str, Sequence[int]]) -> None:
    """`rounds/rounds.json`; and of the seeds stored under `rounds/`, only those `kept` (by
    variant) stay, so that the folder holds what the report reads and nothing else."""
    for folder in sorted(layout.rounds.glob("*/*")) if layout.rounds.is_dir() else []:
        variant, seed = folder.parent.name, folder.name.removeprefix("seed")
        if not (seed.isdigit() and int(seed) in kept.get(variant, ())):
            shutil.rmtree(folder)  # a seed no longer used, or what an interrupt left
    for folder in sorted(layout.rounds.glob("*/")) if layout.rounds.is_dir() else []:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    write_atomic(layout.rounds_record, json_text(record))


def read_rounds(layout: Layout) -> dict[str, Any] | None:
    """What `write_rounds` wrote, or None before the rounds have run."""
    path = layout.rounds_record
    return json.loads(path.read_text()) if path.is_file() else None
