"""The training loop: the seeds of one variant trained together as one stacked network,
`train_stack(specs, data) -> [TrainResult]`, and `train(spec, data)` for one seed alone.
No files, no MLflow.

A seed's numbers do not depend on the stack it trains in: its initialisation, batch order and
dropout masks come from its own seed and generators; the objective is the sum of the seeds'
own objectives, whose gradient with respect to a seed's weights is that seed's own gradient;
the batched products compute each slice as the seed's own product would (`model.MLPStack`);
the optimizer step, weight decay and max-norm act per element or per row; and each seed has
its own best epoch and early stopping (a seed that stops leaves the stack, so it stops
changing). Trained alone or in a stack of any size, its history and weights are bit-identical
(tests/test_stack.py).

Speed: the splits live on the training device for the whole run; a mini-batch is an index
slice of each seed's shuffled permutation (no DataLoader, no per-sample Python), and the K
seeds' mini-batches are one batched product per layer. Metrics are summed on the device and
read once per epoch, so the loop synchronises with the GPU once an epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import DeviceData, DeviceSplit
from .errors import Interrupted, TrainingDiverged
from .model import Architecture, MLPStack, build_mlp
from .regularization import (
    apply_max_norm,
    make_optimizer,
    penalised_parameters,
    penalty,
    training_objective,
    weight_statistics,
)
from .spec import RunSpec

EVAL_CHUNK = 8192  # rows per forward pass when evaluating a whole split
# A run has diverged once its train data loss (whole split, eval mode) is over this many times
# the chance level ln C, the loss of a uniform guess: the optimizer descends on that very loss,
# so a working run stays near or below ln C from its first epoch on (over the default study's
# 24 runs the highest is 0.47, against a threshold of 230 for 10 classes); a mean of 100 ln C
# means logits wrong by hundreds on average, which descent does not reach. A loss that blows
# up while staying finite (a learning rate 1e6 gives 5e11 at epoch 1) ends the run like a NaN.
DIVERGED_OVER_CHANCE = 100


def never() -> bool:
    return False


@dataclass
class TrainResult:
    """What one seed's training produced: its history, its best weights and their test score."""

    architecture: Architecture
    model: nn.Module  # holds the best epoch's weights
    history: list[dict[str, float]]  # one row per epoch, keys as in EPOCH_METRICS
    summary: dict[str, float]
    stopped_early: bool
    device: str


EPOCH_METRICS = (
    "train_loss",  # data loss over the whole training split, eval mode
    "train_accuracy",
    "train_loss_running",  # mean data loss of the epoch's mini-batches, train mode (dropout on)
    "penalty",  # λ1·Σ|w| + λ2·Σw² at the end of the epoch
    "val_loss",
    "val_accuracy",
    "loss_gap",  # val_loss - train_loss
    "accuracy_gap",  # train_accuracy - val_accuracy
    "epoch_seconds",  # the seed's share of its stack's epoch: wall time / seeds in the stack
)

# (index of the seed in the specs, epoch, its row) and (index, its training state)
OnEpoch = Callable[[int, int, dict[str, float]], None]
OnCheckpoint = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class Compute:
    """How the forward pass runs: the stack itself or its compiled form, in float32 or under
    bfloat16 autocast. `model` is always the plain stack (weights, train/eval mode)."""

    model: MLPStack
    forward: Callable[..., torch.Tensor]
    bf16: bool = False

    @classmethod
    def of(cls, model: MLPStack, precision: str = "float32", compile: bool = False) -> Compute:
        return cls(model, torch.compile(model) if compile else model, precision == "bfloat16")

    def __call__(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.forward(x, *args)


@torch.no_grad()
def evaluate(net: Compute, split: DeviceSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """Each seed's (mean cross-entropy, accuracy) over a whole split, in eval mode, no penalty,
    float32: two (K,) tensors on the device, so callers can batch their reads."""
    # Always float32: the logged losses, the choice of the best epoch and the test score are
    # the data loss as defined, whatever precision the training steps use.
    net = Compute(net.model, net.forward)
    stack = net.model
    was_training = stack.training
    stack.eval()
    loss_sum = split.x.new_zeros(len(stack))
    correct = split.x.new_zeros(len(stack))
    for start in range(0, len(split), EVAL_CHUNK):
        logits = net(split.x[start : start + EVAL_CHUNK]).float()  # (K, B, C)
        target = split.y[start : start + EVAL_CHUNK]
        for k in range(len(stack)):
            loss_sum[k] += F.cross_entropy(logits[k], target, reduction="sum")
        correct += (logits.argmax(dim=2) == target).sum(dim=1)
    stack.train(was_training)
    return loss_sum / len(split), correct / len(split)


def train_one_epoch(
    net: Compute,
    optimizer: torch.optim.Optimizer,
    split: DeviceSplit,
    batch: int,
    shuffles: list[torch.Generator],
    variant: Any,
    dropout: list[torch.Generator] | None,
    should_stop: Callable[[], bool] = never,
) -> torch.Tensor:
    """One pass over `split` for each seed of the stack, each in its own shuffled order;
    returns each seed's summed data loss, (K,) on the device, so the caller reads it once.
    Stops with `Interrupted` before a mini-batch once `should_stop()` says so."""
    stack = net.model
    stack.train()
    penalised = [penalised_parameters(seed, variant.penalize_bias) for seed in stack.nets]
    running = split.x.new_zeros(len(stack))
    device = split.x.device
    orders = torch.stack([torch.randperm(len(split), generator=g, device=device) for g in shuffles])
    for start in range(0, len(split), batch):
        if should_stop():
            raise Interrupted
        idx = orders[:, start : start + batch]  # (K, B)
        logits = net(split.x[idx], dropout).float()  # (K, B, C)
        target = split.y[idx]
        objective, data_losses = 0.0, []
        # Each seed's objective as it would be alone (unbind, not indexing: its backward
        # stacks the K gradients at once).
        for k, seed_logits in enumerate(logits.unbind(0)):
            loss, data_loss = training_objective(seed_logits, target[k], variant, penalised[k])
            objective = objective + loss
            data_losses.append(data_loss.detach())
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if variant.max_norm is not None:
            apply_max_norm(stack, variant.max_norm)
        running += torch.stack(data_losses) * idx.shape[1]
    return running


@dataclass
class Seed:
    """One seed's own part of a stack's training."""

    spec: RunSpec
    shuffle: torch.Generator  # batch order
    dropout: torch.Generator  # dropout masks
    state: dict[str, torch.Tensor]  # its network's state dict at the start
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early: bool = False


def _start(spec: RunSpec, arch: Architecture, device: torch.device) -> Seed:
    """A seed's initial weights and generators: those it has trained alone since the first
    version (`torch.manual_seed(seed)`, then the network's initialisation, then dropout)."""
    torch.manual_seed(spec.seed)
    net = build_mlp(arch).to(device)
    dropout = torch.Generator(device=device)
    if device.type == "cpu":  # the global stream after the initialisation, as nn.Dropout drew
        dropout.set_state(torch.get_rng_state())
    else:  # the device's own stream, untouched by the initialisation on the CPU
        dropout.manual_seed(spec.seed)
    shuffle = torch.Generator(device=device).manual_seed(spec.seed)
    return Seed(spec, shuffle, dropout, net.state_dict())


def _resumed(seed: Seed, saved: dict[str, Any], device: torch.device) -> Seed:
    seed.state = {k: t.to(device) for k, t in saved["model"].items()}
    seed.shuffle.set_state(saved["rng"]["shuffle"])
    seed.dropout.set_state(saved["rng"]["dropout"])
    seed.history = [dict(row) for row in saved["history"]]
    seed.best_loss, seed.best_epoch = saved["best_loss"], saved["best_epoch"]
    seed.best_state = {k: t.to(device) for k, t in saved["best_state"].items()}
    return seed


def _optimizer_state_of(optimizer: torch.optim.Optimizer, net: nn.Module) -> dict[str, Any]:
    """The optimizer's state of one seed's parameters, by parameter name (copies)."""
    return {
        name: {k: v.clone() for k, v in optimizer.state[p].items()}
        for name, p in net.named_parameters()
        if p in optimizer.state
    }


def _set_optimizer_state(
    optimizer: torch.optim.Optimizer, net: nn.Module, state: dict[str, Any]
) -> None:
    for name, p in net.named_parameters():
        if name in state:
            optimizer.state[p] = {k: v.to(p.device) for k, v in state[name].items()}


def _diverged(row: dict[str, float], epoch: int, seed: int, n_classes: int) -> None:
    bad = [k for k, x in row.items() if not math.isfinite(x)]
    if bad:
        raise TrainingDiverged(epoch, f"{', '.join(bad)} not finite", seed)
    chance = math.log(n_classes)  # the cross-entropy of a uniform guess
    if row["train_loss"] > DIVERGED_OVER_CHANCE * chance:
        raise TrainingDiverged(
            epoch,
            f"train loss {row['train_loss']:.3g} is over {DIVERGED_OVER_CHANCE} × the "
            f"chance level ln {n_classes} = {chance:.3g}",
            seed,
        )


def train_stack(
    specs: list[RunSpec],
    data: DeviceData,
    on_epoch: OnEpoch | None = None,
    resume: list[dict[str, Any] | None] | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] = never,
) -> list[TrainResult]:
    """Train the seeds `specs` of one variant together, and evaluate each seed's best epoch
    once on the test split; the results in the order of `specs`.

    Each seed's "best epoch" is its epoch of lowest val data loss; its weights are restored at
    the end whether or not early stopping is on, and only they see the test split.

    Every `checkpoint_every` epochs, `on_checkpoint(i, state)` receives seed i's full training
    state (weights, optimizer, generators, history, best so far): plain tensors and numbers,
    loadable with `torch.load(weights_only=True)`. Passing it back in `resume[i]` continues
    bit for bit, in a stack of any make-up. `should_stop` is asked before every mini-batch;
    once it says so, training ends with `Interrupted`.
    """
    same = {repr({k: v for k, v in s.hyperparameters().items() if k != "seed"}) for s in specs}
    if len(same) != 1:
        raise ValueError("a stack trains the seeds of one variant only")
    resume = resume or [None] * len(specs)
    # Seeds that continue from different epochs have taken different numbers of optimizer
    # steps, which one stacked optimizer cannot hold: each such group is a stack of its own.
    groups: dict[int, list[int]] = {}
    for i, saved in enumerate(resume):
        groups.setdefault(len(saved["history"]) if saved else 0, []).append(i)
    results: list[TrainResult | None] = [None] * len(specs)
    for members in groups.values():

        def epoch_of(pos: int, epoch: int, row: dict[str, float], m: list[int] = members) -> None:
            if on_epoch is not None:
                on_epoch(m[pos], epoch, row)

        def checkpoint_of(pos: int, state: dict[str, Any], m: list[int] = members) -> None:
            if on_checkpoint is not None:
                on_checkpoint(m[pos], state)

        trained = _train(
            [specs[i] for i in members],
            data,
            [resume[i] for i in members],
            epoch_of,
            checkpoint_of if on_checkpoint is not None else None,
            checkpoint_every,
            should_stop,
        )
        for i, result in zip(members, trained, strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


@dataclass
class Lane:
    """Seeds whose steps run together: a stack, its optimizer, and which seeds it holds."""

    members: list[int]  # positions in `specs`
    stack: MLPStack
    optimizer: torch.optim.Optimizer
    net: Compute


def lanes_for(device: torch.device, settings: Any, members: list[int]) -> list[list[int]]:
    """How a stack's seeds share the device. On a CPU each seed is a lane of its own, and the
    lanes run in threads side by side (`train.parallel` at once; 0: all), each product on
    `train.threads` cores; a seed's numbers are then those of its training alone, on any
    machine with the same CPU, whatever its core count. On a GPU, lanes of `train.parallel`
    seeds (0: all), each one batched network, since a small network there is bound by kernel
    launches, not by arithmetic."""
    if device.type == "cpu":
        return [[i] for i in members]
    size = settings.parallel or len(members)
    return [members[i : i + size] for i in range(0, len(members), size)]


def _train(
    specs: list[RunSpec],
    data: DeviceData,
    resume: list[dict[str, Any] | None],
    on_epoch: OnEpoch,
    on_checkpoint: OnCheckpoint | None,
    checkpoint_every: int,
    should_stop: Callable[[], bool],
) -> list[TrainResult]:
    """`train_stack` for seeds that start from the same epoch."""
    device = data.device
    spec = specs[0]
    v, settings = spec.variant, spec.train
    arch = spec.architecture(data.n_features, data.n_classes)
    seeds = [_start(s, arch, device) for s in specs]
    for seed, saved in zip(seeds, resume, strict=True):
        if saved is not None:
            _resumed(seed, saved, device)
    has_dropout = v.input_dropout > 0 or any(r > 0 for r in spec.dropout_rates)
    optimizer_states = [s["optimizer"] if s is not None else {} for s in resume]

    def lane(members: list[int]) -> Lane:
        stack = MLPStack(arch, [seeds[i].state for i in members])
        optimizer = make_optimizer(
            stack, spec.optimizer, settings.lr, v.weight_decay, v.penalize_bias, settings.momentum
        )
        for net, i in zip(stack.nets, members, strict=True):
            _set_optimizer_state(optimizer, net, optimizer_states[i])
        return Lane(
            members, stack, optimizer, Compute.of(stack, settings.precision, settings.compile)
        )

    def epoch_of(lane: Lane) -> list[list[float]]:
        """One epoch of a lane's seeds, and their numbers: one read from the device."""
        running = train_one_epoch(
            lane.net,
            lane.optimizer,
            data.train,
            settings.batch_size,
            [seeds[i].shuffle for i in lane.members],
            v,
            [seeds[i].dropout for i in lane.members] if has_dropout else None,
            should_stop,
        )
        train_loss, train_acc = evaluate(lane.net, data.train)
        val_loss, val_acc = evaluate(lane.net, data.val)
        with torch.no_grad():
            pen = torch.stack(
                [
                    penalty(penalised_parameters(n, v.penalize_bias), v.l1, v.l2)
                    for n in lane.stack.nets
                ]
            )
        values = [train_loss, train_acc, running / len(data.train), pen, val_loss, val_acc]
        return torch.stack([t.to(running.dtype) for t in values], dim=1).tolist()

    def leaving(old: Lane, stopping: set[int]) -> Lane:
        """`old` without the seeds in `stopping`: a lane of the others, as they are now."""
        if not stopping & set(old.members):
            return old
        stay = [i for i in old.members if i not in stopping]
        for pos, i in enumerate(old.members):
            if i not in stopping:
                seeds[i].state = old.stack.seed_state(pos)
                optimizer_states[i] = _optimizer_state_of(old.optimizer, old.stack.nets[pos])
        return lane(stay) if stay else Lane([], old.stack, old.optimizer, old.net)

    if device.type == "cpu":
        torch.set_num_threads(settings.threads)
    lanes = [lane(m) for m in lanes_for(device, settings, list(range(len(seeds))))]
    at_once = settings.parallel or len(lanes)
    epoch = len(seeds[0].history) + 1
    with ThreadPoolExecutor(max_workers=min(at_once, len(lanes))) as pool:
        while lanes and epoch <= settings.epochs:
            started = time.perf_counter()
            values = list(pool.map(epoch_of, lanes))
            active = [i for lane in lanes for i in lane.members]
            rows = [
                dict(zip(EPOCH_METRICS[:6], vals, strict=False)) for ls in values for vals in ls
            ]
            share = (time.perf_counter() - started) / len(active)
            for i, row in zip(active, rows, strict=True):
                _diverged(row, epoch, seeds[i].spec.seed, data.n_classes)
            stopping = set()
            where = {i: (lane, pos) for lane in lanes for pos, i in enumerate(lane.members)}
            for i, row in zip(active, rows, strict=True):
                seed = seeds[i]
                row["loss_gap"] = row["val_loss"] - row["train_loss"]
                row["accuracy_gap"] = row["train_accuracy"] - row["val_accuracy"]
                row["epoch_seconds"] = share
                seed.history.append(row)
                on_epoch(i, epoch, row)
                if row["val_loss"] < seed.best_loss:
                    seed.best_loss, seed.best_epoch = row["val_loss"], epoch
                    lane, pos = where[i]
                    seed.best_state = lane.stack.seed_state(pos)
                elif v.patience is not None and epoch - seed.best_epoch >= v.patience:
                    seed.stopped_early = True
                    stopping.add(i)
            if on_checkpoint is not None and checkpoint_every and epoch % checkpoint_every == 0:
                for i in active:
                    if i in stopping:
                        continue
                    seed, (lane, pos) = seeds[i], where[i]
                    on_checkpoint(
                        i,
                        {
                            "model": lane.stack.seed_state(pos),
                            "optimizer": _optimizer_state_of(lane.optimizer, lane.stack.nets[pos]),
                            "rng": {
                                "shuffle": seed.shuffle.get_state(),
                                "dropout": seed.dropout.get_state(),
                            },
                            "history": seed.history,
                            "best_loss": seed.best_loss,
                            "best_epoch": seed.best_epoch,
                            "best_state": seed.best_state,
                        },
                    )
            if stopping:  # they leave their lanes, so they stop changing
                lanes = [leaving(lane, stopping) for lane in lanes]
                lanes = [lane for lane in lanes if lane.members]
            epoch += 1
    return _finish(seeds, arch, data)


def _finish(seeds: list[Seed], arch: Architecture, data: DeviceData) -> list[TrainResult]:
    """Each seed's best weights, scored once on the test split."""
    assert all(s.best_state is not None for s in seeds)  # an epoch ran, its val loss finite
    best = MLPStack(arch, [s.best_state for s in seeds]).to(data.device)
    test_loss, test_acc = (t.tolist() for t in evaluate(Compute.of(best), data.test))
    results = []
    for k, (seed, net) in enumerate(zip(seeds, best.seed_networks(), strict=True)):
        best_row, last = seed.history[seed.best_epoch - 1], seed.history[-1]
        summary = {
            "best_epoch": float(seed.best_epoch),
            "epochs_run": float(len(seed.history)),
            "best_val_loss": best_row["val_loss"],
            "best_val_accuracy": best_row["val_accuracy"],
            "train_loss_best": best_row["train_loss"],
            "train_accuracy_best": best_row["train_accuracy"],
            "loss_gap_best": best_row["loss_gap"],
            "accuracy_gap_best": best_row["accuracy_gap"],
            "train_loss_last": last["train_loss"],
            "val_loss_last": last["val_loss"],
            "loss_gap_last": last["loss_gap"],
            "accuracy_gap_last": last["accuracy_gap"],
            "test_loss": test_loss[k],
            "test_accuracy": test_acc[k],
            **weight_statistics(net),
            "train_seconds": float(np.sum([r["epoch_seconds"] for r in seed.history])),
        }
        results.append(
            TrainResult(arch, net, seed.history, summary, seed.stopped_early, str(data.device))
        )
    return results


def train(
    spec: RunSpec,
    data: DeviceData,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    resume: dict[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] = never,
) -> TrainResult:
    """One seed alone: `train_stack` with a stack of one."""
    return train_stack(
        [spec],
        data,
        on_epoch=(lambda _, epoch, row: on_epoch(epoch, row)) if on_epoch else None,
        resume=[resume],
        on_checkpoint=(lambda _, state: on_checkpoint(state)) if on_checkpoint else None,
        checkpoint_every=checkpoint_every,
        should_stop=should_stop,
    )[0]
