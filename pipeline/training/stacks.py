"""The networks of K seeds of one variant, trained as one stack: `stack_of(arch, states)`.

The MLP stacks as one batched network (`MLPStack`); any other network as its seeds' modules
side by side (`ModuleStack`). Either way a seed's numbers are those of its network trained
alone, bit for bit (tests/unit/training/test_stacks.py). On a CPU a lane holds one seed, so the
two are the same there; on a GPU the MLP's seeds share each product.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.architecture import Architecture
from .model import ACTIVATIONS, build, dropout_layers, dropout_mask_, weight_layers


def stack_of(arch: Architecture, states: list[dict[str, torch.Tensor]]) -> Stack:
    """The stack of the seeds whose weights are `states` (each its network's state dict)."""
    return MLPStack(arch, states) if arch.network == "mlp" else ModuleStack(arch, states)


def _load(arch: Architecture, state: dict[str, torch.Tensor]) -> nn.Module:
    """The network of `arch` holding `state`. Built for real, on the CPU under a forked RNG (it
    draws nothing from the seeds' streams): a buffer the state dict does not hold (registered
    with persistent=False) keeps the value the network gives it, which an empty build would
    leave as whatever the memory held."""
    with torch.random.fork_rng(devices=[]):
        net = build(arch)
    net = net.to(next(iter(state.values())).device)  # then the weights load device to device
    net.load_state_dict(state)
    return net


class Stack(nn.Module):
    """What the trainer needs of a stack: its seeds' networks (`nets`), a forward pass of
    (K, B, n_inputs) or a shared (B, n_inputs) to (K, B, n_classes), and a seed's weights."""

    def __init__(self, arch: Architecture, states: list[dict[str, torch.Tensor]]):
        """`states`: each seed's weights as the state dict of its network."""
        super().__init__()
        self.arch = arch
        self.nets = nn.ModuleList(_load(arch, state) for state in states)

    def per_seed(self, x: torch.Tensor) -> torch.Tensor:
        """x as (K, B, n_inputs): a (B, n_inputs) batch is shared by every seed."""
        return x.expand(len(self), *x.shape) if x.dim() == 2 else x

    def __len__(self) -> int:
        return len(self.nets)

    def seed_state(self, k: int) -> dict[str, torch.Tensor]:
        """Seed k's weights (a copy) as the state dict of its network."""
        return {name: t.detach().clone() for name, t in self.nets[k].state_dict().items()}

    def seed_networks(self) -> list[nn.Module]:
        """Each seed's network (the stack's own modules)."""
        return list(self.nets)


class ModuleStack(Stack):
    """Any network's seeds, side by side: each mini-batch runs each seed's own module on its
    slice, its dropout drawing from its own generator."""

    def __init__(self, arch: Architecture, states: list[dict[str, torch.Tensor]]):
        super().__init__(arch, states)
        self.dropouts = [dropout_layers(net) for net in self.nets]

    def forward(
        self, x: torch.Tensor, dropout: list[torch.Generator] | None = None
    ) -> torch.Tensor:
        """x: (K, B, n_inputs), or (B, n_inputs) shared by every seed -> (K, B, n_classes).

        `dropout`: one generator per seed in training; None evaluates (no dropout)."""
        out = []
        for k, (net, xk) in enumerate(zip(self.nets, self.per_seed(x).unbind(0), strict=True)):
            for layer in self.dropouts[k]:
                layer.generator = dropout[k] if dropout is not None else None
            out.append(net(xk))
        return torch.stack(out)


class MLPStack(Stack):
    """The networks of K seeds of one variant, trained as one: each mini-batch runs every
    seed's network in one forward pass, and one optimizer step updates them all.

    Seed k's numbers are those of its own network (`model.build`) trained alone, bit for bit: it
    keeps its own parameters (so the optimizer, decay and max-norm treat them as they treat
    them alone), each product is computed as its own `nn.Linear` computes it, and its dropout
    masks come from its own generator, drawn as `nn.Dropout` draws them. So they depend
    neither on the other seeds nor on their number.
    """

    def __init__(self, arch: Architecture, states: list[dict[str, torch.Tensor]]):
        super().__init__(arch, states)
        # the k-th linear layer of every seed, layer by layer (an MLP's only weight layers)
        self.columns = list(zip(*(weight_layers(net) for net in self.nets), strict=True))
        self.activation = ACTIVATIONS[arch.activation]()

    def forward(
        self, x: torch.Tensor, dropout: list[torch.Generator] | None = None
    ) -> torch.Tensor:
        """x: (K, B, n_inputs), or (B, n_inputs) shared by every seed -> (K, B, n_classes).

        `dropout`: one generator per seed in training; None evaluates (no dropout)."""
        rates = self.arch.dropout or (0.0,) * len(self.arch.hidden_sizes)
        x = _dropout(self.per_seed(x), self.arch.input_dropout, dropout)
        for column, rate in zip(self.columns[:-1], rates, strict=True):
            x = _dropout(self.activation(_product(column, x)), rate, dropout)
        return _product(self.columns[-1], x)


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
        dropout_mask_(mask[k], rate, generator)
    return x * mask
