"""Whether each variant's techniques can act on the network and the data, checked before
anything trains: the network builds (on the CPU, torch's generator untouched) and maps
(B, n_features) to (B, n_classes); each technique that is on finds what it needs
(`techniques.NEEDS`); a network holds no dropout its variant did not ask for; and the
learning-rate schedule has the steps it needs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..core.architecture import Architecture
from ..core.errors import ConfigError
from ..core.spec import RunSpec
from ..core.techniques import NEEDS, TECHNIQUES, Technique
from ..data.prepared import Pool, Prepared
from .model import build, cnn_fits, dropout_layers, weight_layers
from .schedules import one_cycle_rise

# Dropout modules whose masks come from torch's shared generator: a seed's masks would then
# depend on the other seeds training beside it.
SHARED_RANDOMNESS = (
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def check_applicable(specs: Sequence[RunSpec], pool: Pool | Prepared) -> None:
    """A ConfigError, one line, for the first variant of `specs` whose techniques cannot act
    on its network or on the data, or for a learning-rate schedule the data's training split
    leaves too few steps (`schedules.one_cycle_rise`)."""
    for spec in specs:
        if spec.train.lr_schedule != "one_cycle":
            continue
        if (why := one_cycle_rise(spec.train, pool.meta["sizes"]["train"])) is not None:
            raise ConfigError(why)
    seen = set()
    for spec in specs:
        if spec.variant_name not in seen:
            seen.add(spec.variant_name)
            _check(spec, pool)


def _check(spec: RunSpec, pool: Pool | Prepared) -> None:
    where = f"variants.{spec.variant_name}"
    arch = spec.architecture(pool.input_shape, pool.n_classes)
    if arch.network == "cnn" and (why := cnn_fits(arch)) is not None:
        raise ConfigError(f"model.network cnn: {why}")
    network = _built(arch)
    odd = sorted({type(m).__name__ for m in network.modules() if isinstance(m, SHARED_RANDOMNESS)})
    if odd:
        raise ConfigError(
            f"model.network {arch.network}: {', '.join(odd)} draws from torch's shared generator; "
            "use nn.Dropout, whose masks each seed draws from its own"
        )
    has = {
        "weights": bool(weight_layers(network)),
        "dropout": any(m.p > 0 for m in dropout_layers(network)),
        "images": len(arch.shape) == 3 and pool.meta["normalize"] != "per_feature",
    }
    for technique in TECHNIQUES:
        if _on(spec, technique) and technique.needs is not None and not has[technique.needs]:
            raise ConfigError(
                f"{where}.{technique.knob} cannot apply to {_what(arch, pool)}: it needs "
                f"{NEEDS[technique.needs]}"
            )
    if has["dropout"] and not (spec.variant.input_dropout > 0 or any(spec.dropout_rates)):
        raise ConfigError(
            f"{where}: the network {arch.network} has dropout though the variant sets none; "
            "its factory must add dropout only at the rates it receives"
        )


def _on(spec: RunSpec, technique: Technique) -> bool:
    value = getattr(spec.variant, technique.knob)
    if technique.label(spec) is not None or value is True:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _built(arch: Architecture) -> nn.Module:
    """The network, built and run once on a batch of 2 zeros on the CPU; a ConfigError if it
    does not map (B, n_features) to (B, n_classes). Not on the meta device, which would cost no
    memory: its kernels load torch.compile's front end, as long to import as torch itself.
    torch's generator is left as it was found."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        network = build(arch)
        try:
            out = network.eval()(torch.zeros(2, arch.n_inputs))
        except Exception as e:  # the user's code
            raise ConfigError(
                f"model.network {arch.network}: a batch of 2 inputs of shape {list(arch.shape)} "
                f"fails in its forward pass ({type(e).__name__}: {e})"
            ) from None
    if tuple(out.shape) != (2, arch.n_classes):
        raise ConfigError(
            f"model.network {arch.network}: gives outputs of shape {tuple(out.shape)} for a batch "
            f"of 2; expected (2, {arch.n_classes}), one logit per class"
        )
    return network


def _what(arch: Architecture, pool: Pool | Prepared) -> str:
    return f"the {arch.network} on {pool.meta['dataset']} (input {list(arch.shape)})"
