"""The seeds the tuned study's rounds add: `tuned-rounds/<technique>/<strength>/seed<k>.json`
(every strength of a path) and `tuned-rounds/baseline/seed<k>.json`, each a sweep point's file
with `made_with` (what decides whether a later run of the rounds may reuse it); and
`tuned-rounds/rounds.json`, what the rounds did."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from ..core.config import Strength
from ..core.files import json_text, write_atomic
from ..core.paths import Layout
from ..core.records import RunRecord
from .sweep_files import run_id_of_log, strength_json, strength_of

# (technique, or None for the baseline; strength, 0 for the baseline; seed)
Key = tuple[str | None, Strength, int]


def write_seed(
    layout: Layout, technique: str | None, strength: Strength, record: RunRecord, made_with: str
) -> None:
    """One seed of one point (technique None: the baseline's), written as soon as it has
    trained: an interrupted round keeps it. Its MLflow run is named under `logs/`."""
    path = layout.tuned_round_point(technique, strength) / f"seed{record.seed}.json"
    entry = {
        "technique": technique,
        "strength": strength_json(strength),
        **record.to_json(),
        "history": record.history,
        "made_with": made_with,
    }
    write_atomic(path, json_text(entry, indent=1))
    write_atomic(layout.sweep_log(path), json_text(record.provenance()))


def read_seeds(layout: Layout) -> dict[Key, tuple[str, RunRecord]]:
    """Every stored seed: key → (made_with, its record, with the MLflow run its log names)."""
    found = {}
    if not layout.tuned_rounds.is_dir():
        return found
    for path in sorted(layout.tuned_rounds.glob("*/**/seed*.json")):
        entry = json.loads(path.read_text())
        record = RunRecord.from_json(entry, entry["history"])
        record = replace(record, run_id=run_id_of_log(layout.sweep_log(path)))
        key = (entry["technique"], strength_of(entry["strength"]), int(entry["seed"]))
        found[key] = (str(entry["made_with"]), record)
    return found


def write_record(layout: Layout, record: dict[str, Any], kept: Collection[Key]) -> None:
    """`tuned-rounds/rounds.json`; of the stored seeds only those `kept` stay, so that the
    folder holds what the report reads and nothing else."""
    for key in set(read_seeds(layout)) - set(kept):
        technique, strength, seed = key
        (layout.tuned_round_point(technique, strength) / f"seed{seed}.json").unlink()
    for folder in sorted(layout.tuned_rounds.glob("**/"), reverse=True):
        if folder != layout.tuned_rounds and not any(folder.iterdir()):
            folder.rmdir()
    write_atomic(layout.tuned_rounds_record, json_text(record))


def read_record(layout: Layout) -> dict[str, Any] | None:
    """What `write_record` wrote, or None before the rounds have run."""
    path = layout.tuned_rounds_record
    return json.loads(path.read_text()) if path.is_file() else None
