"""The prepare stage: `data/prepared/`."""

from __future__ import annotations

import click

from ..config import Params
from ..data import Prepared, write_prepared
from ..paths import Layout
from ..preparation import prepare as prepare_splits


def prepare(params: Params, layout: Layout) -> Prepared:
    """Split the dataset, add label noise, normalise: `data/prepared/`."""
    prepared, norm = prepare_splits(params.data)
    write_prepared(prepared, norm, layout.prepared)
    sizes = prepared.meta["sizes"]
    click.echo(
        f"prepared {params.data.dataset}: train {sizes['train']}, val {sizes['val']}, "
        f"test {sizes['test']} -> {layout.prepared.relative_to(layout.root)}/"
    )
    return prepared
