"""Files written whole, and the plain formats they hold.

A file is written to a temporary name beside its place, flushed to disk and renamed into it;
a folder is filled beside its place, flushed and swapped in; so a reader (or DVC) sees the old
or the new, never a half-written one, whenever the process is killed or the machine stops.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(value: Any, indent: int = 2) -> str:
    """JSON as every output of the study writes it: indented, with a final newline."""
    return json.dumps(value, indent=indent) + "\n"


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """Rows of equal keys as CSV, a header first (floats as Python writes them: exact)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _sync(folder: Path) -> None:
    """Flush every file under `folder` to disk, so a rename never publishes unwritten data."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` at `target`, moving any old one aside first and deleting it after.
    Only for a folder the caller owns whole (a stage's declared output)."""
    _sync(new)
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def folder_into(target: Path) -> Iterator[Path]:
    """A fresh temporary folder beside `target` to fill; when the block ends without error it
    replaces `target` whole (`replace_dir`). On an error `target` is left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def files_into(target: Path) -> Iterator[Path]:
    """A fresh temporary folder beside `target` to fill; when the block ends without error,
    each file made in it is renamed into `target`, beside whatever `target` already holds
    (a report folder may be one the user keeps other files in: only the files written here
    are replaced). On an error nothing in `target` changes."""
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-new-", dir=target.parent))
    try:
        yield staging
        _sync(staging)
        for path in sorted(staging.iterdir()):
            os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
