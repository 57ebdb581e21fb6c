"""The network: a multi-layer perceptron with optional input and per-layer dropout, alone or
as a stack of seeds (`MLPStack`) that trains them together."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
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


class MLPStack(nn.Module):
    """The networks of K seeds of one variant, trained as one: each mini-batch runs every
    seed's network in one forward pass, and one optimizer step updates them all.

    Seed k's numbers are those of its own `build_mlp` network trained alone, bit for bit: it
    keeps its own parameters (so the optimizer, decay and max-norm treat them as they treat
    them alone), each product is computed as its own `nn.Linear` computes it, and its dropout
    masks come from its own generator, drawn as `nn.Dropout` draws them. So they depend
    neither on the other seeds nor on their number.
    """

    def __init__(self, arch: Architecture, states: list[dict[str, torch.Tensor]]):
        """`states`: each seed's weights as the state dict of its `build_mlp` network."""
        super().__init__()
        self.arch = arch
        self.nets = nn.ModuleList()
        for state in states:
            with torch.device("meta"):  # no memory and no random draws until the weights come
                net = build_mlp(arch)
            net = net.to_empty(device=next(iter(state.values())).device)
            net.load_state_dict(state)
            self.nets.append(net)
        # the k-th linear layer of every seed, layer by layer
        self.columns = list(zip(*(linear_layers(net) for net in self.nets), strict=True))
        self.activation = ACTIVATIONS[arch.activation]()

    def __len__(self) -> int:
        return len(self.nets)

    def forward(
        self, x: torch.Tensor, dropout: list[torch.Generator] | None = None
    ) -> torch.Tensor:
        """x: (K, B, n_inputs), or (B, n_inputs) shared by every seed -> (K, B, n_classes).

        `dropout`: one generator per seed in training; None evaluates (no dropout)."""
        if x.dim() == 2:
            x = x.expand(len(self), *x.shape)
        rates = self.arch.dropout or (0.0,) * len(self.arch.hidden_sizes)
        x = _dropout(x, self.arch.input_dropout, dropout)
        for column, rate in zip(self.columns[:-1], rates, strict=True):
            x = _dropout(self.activation(_product(column, x)), rate, dropout)
        return _product(self.columns[-1], x)

    def seed_state(self, k: int) -> dict[str, torch.Tensor]:
        """Seed k's weights (a copy) as the state dict of its `build_mlp` network."""
        return {name: t.detach().clone() for name, t in self.nets[k].state_dict().items()}

    def seed_networks(self) -> list[nn.Sequential]:
        """Each seed's network (the stack's own modules)."""
        return list(self.nets)


def _product(layers: tuple[nn.Linear, ...], x: torch.Tensor) -> torch.Tensor:
    """Each seed's linear layer on its slice of x: (K, B, i) -> (K, B, o).

    On a CPU, one product per seed, exactly `nn.Linear`'s (a batched product's kernel for a
    slice can depend on the number of slices: MKL picks another one for some shapes), at no
    measurable cost at these sizes. On a GPU, where a small network is bound by kernel
    launches, one batched product.
    """
    if x.device.type == "cpu":
        if len(layers) == 1:  # a CPU lane holds one seed: no copy into a stack
            return layers[0](x[0]).unsqueeze(0)
        return torch.stack([layer(xk) for layer, xk in zip(layers, x.unbind(0), strict=True)])
    weight = torch.stack([layer.weight for layer in layers])  # (K, o, i)
    bias = torch.stack([layer.bias for layer in layers])  # (K, o)
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _dropout(
    x: torch.Tensor, rate: float, generators: list[torch.Generator] | None
) -> torch.Tensor:
    """Inverted dropout with each seed's mask from its own generator; the same masks and
    arithmetic as `F.dropout` drawing from that generator."""
    if rate == 0 or generators is None:
        return x
    mask = torch.empty_like(x)
    for k, generator in enumerate(generators):
        mask[k].bernoulli_(1 - rate, generator=generator)
    return x * mask.div_(1 - rate)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The layers with a weight matrix, in order (in a stack, seed by seed): what penalties,
    weight decay and max-norm act on."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]
