"""The network: a multi-layer perceptron with optional input and per-layer dropout."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the module from a state dict (saved as JSON beside it)."""

    n_inputs: int
    hidden_sizes: tuple[int, ...]
    n_classes: int
    activation: str = "relu"
    dropout: tuple[float, ...] = ()  # one rate per hidden layer; () means none
    input_dropout: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> Architecture:
        return cls(
            n_inputs=int(raw["n_inputs"]),
            hidden_sizes=tuple(int(h) for h in raw["hidden_sizes"]),
            n_classes=int(raw["n_classes"]),
            activation=str(raw["activation"]),
            dropout=tuple(float(p) for p in raw["dropout"]),
            input_dropout=float(raw["input_dropout"]),
        )


def build_mlp(arch: Architecture) -> nn.Sequential:
    """(B, n_inputs) -> (B, n_classes) logits.

    Layout: [Dropout(input)] → (Linear → activation → [Dropout]) per hidden layer → Linear.
    Dropout modules with rate 0 are left out. Dropout scales kept units by 1/(1-p) in train
    mode and is the identity in eval mode (inverted dropout), so no rescaling at test time.
    """
    rates = arch.dropout or (0.0,) * len(arch.hidden_sizes)
    layers: list[nn.Module] = []
    if arch.input_dropout > 0:
        layers.append(nn.Dropout(arch.input_dropout))
    width = arch.n_inputs
    for size, rate in zip(arch.hidden_sizes, rates, strict=True):
        layers += [nn.Linear(width, size), ACTIVATIONS[arch.activation]()]
        if rate > 0:
            layers.append(nn.Dropout(rate))
        width = size
    layers.append(nn.Linear(width, arch.n_classes))
    return nn.Sequential(*layers)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]
