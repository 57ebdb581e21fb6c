"""The prepare stage: `data/prepared/`."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.config import AT_PATH, Params
from ..core.paths import Layout
from ..data.pool import pool_of
from ..data.prepared import Pool, write_pool
from ..data.sources import FROM_FILES


def prepare(params: Params, layout: Layout) -> Pool:
    """The dataset as one pool, and how each seed draws its splits: `data/prepared/`."""
    pool = pool_of(params.data)
    write_pool(pool, layout.prepared)
    sizes = pool.meta["sizes"]
    each = "each seed's" if pool.meta["splits"] == "per_seed" else "one fixed"
    official = " (its official test set)" if pool.meta.get("test_split") == "official" else ""
    click.echo(
        f"prepared {params.data.dataset}: {pool.meta['pool_size']} examples, {each} split "
        f"train {sizes['train']}, val {sizes['val']}, test {sizes['test']}{official} "
        f"-> {layout.prepared.relative_to(layout.root)}/"
    )
    # Said once the data is prepared, so that a mistake in it stays one line.
    source = params.data.path if params.data.dataset in AT_PATH else params.data.root
    if params.data.dataset in FROM_FILES and not _inside(layout.root / source, layout.raw):
        click.echo(
            f"warning: {source} is outside data/raw/, the folder dvc.yaml declares as "
            "prepare's input: DVC will not rerun prepare when it changes",
            err=True,
        )
    return pool


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())
