"""The prepare stage: `data/prepared/`."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Params
from ..data import Prepared, write_prepared
from ..paths import Layout
from ..preparation import prepare as prepare_splits
from ..sources import FROM_FILES


def prepare(params: Params, layout: Layout) -> Prepared:
    """Split the dataset, add label noise, normalise: `data/prepared/`."""
    prepared, norm = prepare_splits(params.data)
    write_prepared(prepared, norm, layout.prepared)
    sizes = prepared.meta["sizes"]
    click.echo(
        f"prepared {params.data.dataset}: train {sizes['train']}, val {sizes['val']}, "
        f"test {sizes['test']} -> {layout.prepared.relative_to(layout.root)}/"
    )
    # Said once the data is prepared, so that a mistake in it stays one line.
    source = {"npz": params.data.path}.get(params.data.dataset, params.data.root)
    if params.data.dataset in FROM_FILES and not _inside(layout.root / source, layout.raw):
        click.echo(
            f"warning: {source} is outside data/raw/, the folder dvc.yaml declares as "
            "prepare's input: DVC will not rerun prepare when it changes",
            err=True,
        )
    return prepared


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())
