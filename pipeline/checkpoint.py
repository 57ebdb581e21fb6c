"""Checkpoints of a training run, so an interrupted stage can continue (`train --resume`).

A checkpoint holds only tensors, numbers, strings, lists and dicts. It is written with
`torch.save` to a temporary name and renamed into place, and read back with
`torch.load(weights_only=True)`, which refuses any other pickled object: a planted file cannot
run code.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import DataError


def fingerprint(settings: dict[str, Any]) -> str:
    """What a checkpoint was made with; a resume must match it exactly."""
    return json.dumps(settings, sort_keys=True)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
