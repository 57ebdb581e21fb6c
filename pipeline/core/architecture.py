"""A network as the study describes it: `Architecture`, everything needed to build it (by
`training.model.build`) and rebuild it from a state dict. Plain data, no torch, so the layers
above training (specs, outputs, reports) can name a network without importing one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BUILT_IN = ("mlp", "cnn")  # the networks the study builds itself; any other is the user's


def hidden_blocks(network: str, hidden_sizes: Sequence[int], channels: Sequence[int]) -> int | None:
    """How many hidden blocks a built-in network has, one dropout rate each: the MLP's hidden
    layers; the CNN's convolutional blocks, then its dense hidden layers. None for the user's
    network, whose blocks its factory defines."""
    if network == "mlp":
        return len(hidden_sizes)
    if network == "cnn":
        return len(channels) + len(hidden_sizes)
    return None


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network from a state dict (saved as JSON beside it)."""

    n_inputs: int
    hidden_sizes: tuple[int, ...]
    n_classes: int
    activation: str = "relu"
    dropout: tuple[float, ...] = ()  # one rate per hidden block; () means none
    input_dropout: float = 0.0
    network: str = "mlp"  # mlp | cnn | the user's factory, `module:function` or `file.py:function`
    input_shape: tuple[int, ...] = ()  # the shape of one example; () means (n_inputs,)
    channels: tuple[int, ...] = ()  # cnn: the output channels of each convolutional block

    def to_json(self) -> dict:
        return {
            "n_inputs": self.n_inputs,
            "hidden_sizes": list(self.hidden_sizes),
            "n_classes": self.n_classes,
            "activation": self.activation,
            "dropout": list(self.dropout),
            "input_dropout": self.input_dropout,
            "network": self.network,
            "input_shape": list(self.input_shape),
            "channels": list(self.channels),
        }

    @classmethod
    def from_json(cls, raw: dict) -> Architecture:
        """Also reads the architecture.json of models logged before networks were chosen."""
        return cls(
            n_inputs=int(raw["n_inputs"]),
            hidden_sizes=tuple(int(h) for h in raw["hidden_sizes"]),
            n_classes=int(raw["n_classes"]),
            activation=str(raw["activation"]),
            dropout=tuple(float(p) for p in raw["dropout"]),
            input_dropout=float(raw["input_dropout"]),
            network=str(raw.get("network", "mlp")),
            input_shape=tuple(int(d) for d in raw.get("input_shape", ())),
            channels=tuple(int(c) for c in raw.get("channels", ())),
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return self.input_shape or (self.n_inputs,)
