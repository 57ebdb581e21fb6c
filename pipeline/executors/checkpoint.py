"""Checkpoints of a variant's runs, so an interrupted stage can continue (`train --resume`).

While a seed trains, its file `checkpoints/<variant>/seed<k>.pt` holds the training state of
its last checkpoint; once it has finished, its record, until the stage has written its
outputs and deletes the folder. A checkpoint holds only tensors, numbers, strings, bytes,
lists and dicts: it is written with `torch.save` to a temporary name and renamed into place,
and read back with `torch.load(weights_only=True)`, which refuses any other pickled object, so
a planted file cannot run code.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ConfigError, DataError
from ..core.files import write_atomic


def fingerprint(settings: dict[str, Any]) -> str:
    """What a checkpoint was made with; a resume must match it exactly."""
    return json.dumps(settings, sort_keys=True)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint this project wrote; anything else is refused with a DataError."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"{path}: refused (not a checkpoint of this project, or corrupted: {first}); "
            "delete it and train without --resume"
        ) from None
    if not isinstance(payload, dict) or "fingerprint" not in payload:
        raise DataError(f"{path}: not a checkpoint of this project; delete it")
    return payload


class Checkpoints:
    """The checkpoints of one variant's seeds, and what they must have been made with.

    Opened with `resume`, it reads every seed's checkpoint at once, so a bad or stale one
    fails before anything trains; without, it deletes any, so a fresh start never mixes with
    an older, interrupted one.
    """

    def __init__(self, folder: Path, fingerprint: str, every: int, seeds: list[int], resume: bool):
        self.folder, self.fingerprint, self.every = folder, fingerprint, every
        if not resume:
            self.clear()
        self.saved = {seed: self._load(seed) for seed in seeds}

    def path(self, seed: int) -> Path:
        return self.folder / f"seed{seed}.pt"

    def _load(self, seed: int) -> dict[str, Any] | None:
        if not self.path(seed).is_file():
            return None
        payload = load_checkpoint(self.path(seed))
        if payload["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"{self.path(seed)} was made with other settings, data or device than this "
                "run has; train without --resume to start over"
            )
        return payload

    def save_progress(self, seed: int, run_id: str, state: dict[str, Any]) -> None:
        payload = {"fingerprint": self.fingerprint, "run_id": run_id, "done": False}
        save_checkpoint(self.path(seed), {**payload, "state": state})

    def save_done(self, seed: int, run_id: str, finished: dict[str, Any]) -> None:
        """`finished`: the run's record, as `RunRecord.to_checkpoint` gives it."""
        payload = {"fingerprint": self.fingerprint, "run_id": run_id, "done": True}
        save_checkpoint(self.path(seed), {**payload, "finished": finished})

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
