"""The strength paths' points: `sweeps/<technique>/<strength>/seed<k>.json`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..core.config import Strength
from ..core.files import json_text, write_atomic
from ..core.paths import Layout
from ..core.records import RunRecord


def write_sweep_point(
    layout: Layout, folder: Path, technique: str, strength: Strength, records: list[RunRecord]
) -> list[Path]:
    """One point of a strength path: each seed's record (with its history) in `folder`, as
    `seed<k>.json`. Returns the files."""
    paths = []
    for record in records:
        point = {
            "technique": technique,
            "strength": strength_json(strength),
            **record.to_json(),
            "history": record.history,
        }
        path = folder / f"seed{record.seed}.json"
        write_atomic(path, json_text(point, indent=1))
        write_atomic(layout.sweep_log(path), json_text(record.provenance()))
        paths.append(path)
    return paths


def read_sweep_points(
    layout: Layout,
) -> tuple[dict[tuple[str, Strength, int], RunRecord], list[Path]]:
    """Every point under sweeps/, by (technique, strength, seed), with the MLflow run its log
    names (`run_id`): the newest file wins. Files
    of strengths no longer in params.yaml stay there and are left out by the caller; so are
    files that are not points (returned apart, for the caller to name)."""
    found: dict[tuple[str, Strength, int], tuple[float, RunRecord]] = {}
    unreadable = []
    for path in sorted(layout.sweeps.rglob("*.json")):
        try:
            point = json.loads(path.read_text())
            key = (str(point["technique"]), strength_of(point["strength"]), int(point["seed"]))
            record = RunRecord.from_json(point, point["history"])
        except (ValueError, KeyError, TypeError):  # JSONDecodeError is a ValueError
            unreadable.append(path)
            continue
        record = replace(record, run_id=run_id_of_log(layout.sweep_log(path)))
        mtime = path.stat().st_mtime
        if key not in found or found[key][0] < mtime:
            found[key] = (mtime, record)
    return {key: record for key, (_, record) in found.items()}, unreadable


def strength_json(strength: Strength) -> float | list[float]:
    """A strength in a point's file: a number, or a list for the joint grid's."""
    return list(strength) if isinstance(strength, tuple) else strength


def strength_of(value: float | list[float]) -> Strength:
    """A strength as `strength_json` wrote it."""
    return tuple(float(v) for v in value) if isinstance(value, list) else float(value)


def run_id_of_log(log: Path) -> str:
    """The MLflow run a point's log names; "" where there is none (made elsewhere)."""
    try:
        return str(json.loads(log.read_text()).get("run_id") or "")
    except (OSError, ValueError, AttributeError):
        return ""
