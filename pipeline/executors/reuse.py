"""Whether a seed stored by an earlier run of a rounds stage may stand for one trained now:
`reuse_key`, a digest of everything its numbers depend on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..core.config import Params
from ..core.files import json_text
from ..core.spec import RunSpec
from ..data.prepared import Pool
from ..training.device import resolve_device


def reuse_key(params: Params, pool: Pool, spec: RunSpec, first_round: Sequence[bytes]) -> str:
    """A digest of what a seed added in a round is trained with: the data, the device and
    threads, `spec`'s resolved settings but its seed, and the first round's results (the
    bytes of its files, or of its records).
    Code that changed any number changes those results too."""
    settings = {
        "data": pool.digest(),
        "device": str(resolve_device(params.train.device)),
        "threads": params.train.threads,
        "settings": {k: v for k, v in spec.hyperparameters().items() if k != "seed"},
        "first_round": [hashlib.sha256(content).hexdigest() for content in first_round],
    }
    return hashlib.sha256(json_text(settings).encode()).hexdigest()
