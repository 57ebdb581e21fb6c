"""The networks: a multi-layer perceptron, a small convolutional network for image-shaped data,
or the user's own (`user_network`), each described by an `Architecture` and built by `build`.

Every network the pipeline trains takes the flattened features, (B, n_features), and gives the
logits, (B, n_classes): the prepared splits are flat, and networks that want the input's shape
(the CNN, the user's) start with an `nn.Unflatten` to `input_shape`.

Dropout: every `nn.Dropout` of a network draws its masks from a generator its seed owns
(`SeededDropout`), so a seed's numbers depend neither on the other seeds nor on the threads
that train them.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..core.architecture import Architecture, hidden_blocks

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}

# The layers with a weight a penalty, weight decay or max-norm act on; and the normalisation
# layers, whose parameters (like biases) they touch only when asked (`penalize_bias`).
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)


def build(arch: Architecture) -> nn.Module:
    """The network `arch` describes, with fresh weights: (B, n_inputs) -> (B, n_classes)."""
    if arch.network == "mlp":
        network = build_mlp(arch)
    elif arch.network == "cnn":
        network = build_cnn(arch)
    else:
        from .user_network import call_factory

        made = call_factory(
            arch.network, arch.shape, arch.n_classes, tuple(arch.dropout), arch.input_dropout
        )
        network = wrap_shaped(made, arch.shape)  # the splits are flat: the factory sees shape
    _seed_dropout(network)
    return network


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
    return nn.Sequential(*layers, *_dense(arch, arch.n_inputs, rates))


def _dense(arch: Architecture, width: int, rates: tuple[float, ...]) -> list[nn.Module]:
    """(Linear → activation → [Dropout]) per hidden size, from `width` inputs, then the
    Linear of the logits."""
    layers: list[nn.Module] = []
    for size, rate in zip(arch.hidden_sizes, rates, strict=True):
        layers += [nn.Linear(width, size), ACTIVATIONS[arch.activation]()]
        if rate > 0:
            layers.append(nn.Dropout(rate))
        width = size
    return [*layers, nn.Linear(width, arch.n_classes)]


def build_cnn(arch: Architecture) -> nn.Sequential:
    """(B, n_inputs) -> (B, n_classes) logits, for inputs of shape (C, H, W).

    Layout: Unflatten → [Dropout(input)] → (Conv 3×3, padding 1 → activation → max-pool 2×2 →
    [Dropout]) per entry of `channels` → Flatten → (Linear → activation → [Dropout]) per
    hidden size → Linear. One dropout rate per hidden block, as in the MLP.
    """
    c, h, w = arch.shape
    rates = arch.dropout or (0.0,) * hidden_blocks("cnn", arch.hidden_sizes, arch.channels)
    conv_rates, dense_rates = rates[: len(arch.channels)], rates[len(arch.channels) :]
    layers: list[nn.Module] = [nn.Unflatten(1, arch.shape)]
    if arch.input_dropout > 0:
        layers.append(nn.Dropout(arch.input_dropout))
    for out, rate in zip(arch.channels, conv_rates, strict=True):
        layers += [nn.Conv2d(c, out, 3, padding=1), ACTIVATIONS[arch.activation](), nn.MaxPool2d(2)]
        if rate > 0:
            layers.append(nn.Dropout(rate))
        c, h, w = out, h // 2, w // 2
    return nn.Sequential(*layers, nn.Flatten(), *_dense(arch, c * h * w, dense_rates))


def cnn_fits(arch: Architecture) -> str | None:
    """Why the CNN cannot take this input, or None."""
    if len(arch.shape) != 3:
        return f"the cnn needs image-shaped data (C, H, W); the input shape is {list(arch.shape)}"
    side = 2 ** len(arch.channels)
    if min(arch.shape[1:]) < side:
        return (
            f"{len(arch.channels)} pooling blocks need images of at least {side}×{side}; "
            f"the input shape is {list(arch.shape)}"
        )
    return None


def wrap_shaped(network: nn.Module, shape: tuple[int, ...]) -> nn.Sequential:
    """`network`, which takes (B, *shape), as a network of flat inputs (its parameters keep
    their names under `network.`)."""
    return nn.Sequential(OrderedDict(shape=nn.Unflatten(1, shape), network=network))


def dropout_mask_(mask: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """`mask` filled in place with inverted dropout's mask at rate `p`, drawn from `generator`:
    each entry 0, or 1/(1 − p) with probability 1 − p."""
    return mask.bernoulli_(1 - p, generator=generator).div_(1 - p)


class SeededDropout(nn.Module):
    """`nn.Dropout`, with masks drawn from the generator its seed sets (`generator`; None:
    torch's default one, as `nn.Dropout`): the same masks and arithmetic as `F.dropout`
    drawing from that generator."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * dropout_mask_(torch.empty_like(x), self.p, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _seed_dropout(network: nn.Module) -> None:
    """Every `nn.Dropout` of `network` as a `SeededDropout` of the same rate."""
    for module in list(network.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Dropout:
                setattr(module, name, SeededDropout(child.p))


def dropout_layers(model: nn.Module) -> list[SeededDropout]:
    return [m for m in model.modules() if isinstance(m, SeededDropout)]


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The linear and convolutional layers, in order (in a stack, seed by seed): what
    penalties, weight decay and max-norm act on."""
    return [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


def norm_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The parameters of the normalisation layers (scale and shift)."""
    return [p for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters()]
