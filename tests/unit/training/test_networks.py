"""Networks other than the MLP: the built-in CNN, the user's own factory, augmentation, and
the check that refuses a technique a network or the data cannot take, before training."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.core.architecture import Architecture
from pipeline.core.config import ModelConfig, TrainConfig
from pipeline.core.errors import ConfigError
from pipeline.core.spec import RunSpec
from pipeline.core.variant import Variant
from pipeline.data.prepared import Prepared, Split
from pipeline.training.applicable import check_applicable
from pipeline.training.augment import augment
from pipeline.training.device import DeviceData
from pipeline.training.epoch import Compute, evaluate
from pipeline.training.model import SeededDropout, build, weight_layers
from pipeline.training.regularization import penalised_parameters, penalty
from pipeline.training.stacks import stack_of
from pipeline.training.trainer import train_stack
from tests.support.training import assert_same_run, train

CPU = torch.device("cpu")
SHAPE = (1, 8, 8)


def images(n: int = 240, seed: int = 0, raw_zero: float | None = -0.5) -> Prepared:
    """n 8×8 one-channel images of 3 classes (a bright bar in one of three rows, plus noise):
    a problem a small CNN learns, with its shape in meta.json as `prepare` writes it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0.0, 0.3, size=(n, *SHAPE)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 1 + 2 * label, 1:7] += 2.0
    x = x.reshape(n, -1)
    third = n // 3

    def split(a: int, b: int) -> Split:
        return Split(x[a:b], y[a:b].astype(np.int64))

    meta = {
        "dataset": "bars",
        "n_features": 64,
        "n_classes": 3,
        "input_shape": list(SHAPE),
        "raw_zero": raw_zero,
        "normalize": "global" if raw_zero is not None else "per_feature",
    }
    return Prepared(split(0, third), split(third, 2 * third), split(2 * third, n), meta)


@pytest.fixture(scope="module")
def bars() -> DeviceData:
    return DeviceData.of(images(), CPU)


def spec(
    network: str = "cnn", variant: Variant | None = None, seed: int = 0, **train_kw: object
) -> RunSpec:
    settings = {"epochs": 3, "batch_size": 32, "lr": 0.01, "seeds": [0], "device": "cpu"}
    settings.update(train_kw)
    model = ModelConfig(network=network, channels=[4, 8], hidden_sizes=[16])
    return RunSpec("v", variant or Variant(), model, TrainConfig(**settings), seed)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a module of network factories into an importable package `user_nets_<n>`; a
    function that writes one more and gives its reference."""
    monkeypatch.syspath_prepend(str(tmp_path))
    count = iter(range(1000))

    def write(body: str, name: str = "build") -> str:
        package = f"user_nets_{next(count)}_{abs(hash(str(tmp_path))) % 10**6}"
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        header = "import torch\nfrom torch import nn\n\n"
        (tmp_path / package / "nets.py").write_text(header + textwrap.dedent(body))
        return f"{package}.nets:{name}"

    yield write
    for name in [m for m in sys.modules if m.startswith("user_nets_")]:
        del sys.modules[name]


EXAMPLE = """
def build(input_shape, n_classes, dropout, input_dropout):
    return nn.Sequential(
        nn.Dropout(input_dropout),
        nn.Conv2d(input_shape[0], 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(4 * input_shape[1] * input_shape[2], n_classes),
    )
"""


# --- the built-in CNN ----------------------------------------------------------------------


def test_the_cnn_maps_flat_images_to_logits_with_a_dropout_after_each_block() -> None:
    arch = spec(variant=Variant(dropout=0.25)).architecture(SHAPE, 3)
    assert arch.dropout == (0.25, 0.25, 0.25)  # two conv blocks and one dense hidden layer
    net = build(arch)
    assert net(torch.zeros(5, 64)).shape == (5, 3)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8)]
    # after two 2×2 poolings an 8×8 image is 2×2: 8 channels × 4 pixels into the dense layer
    assert [m.in_features for m in net.modules() if isinstance(m, nn.Linear)] == [32, 16]
    assert [m.p for m in net.modules() if isinstance(m, SeededDropout)] == [0.25] * 3


def test_cnn_weights_are_what_penalties_touch() -> None:
    net = build(spec().architecture(SHAPE, 3))
    layers = weight_layers(net)
    assert [type(m) for m in layers] == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]
    expected = sum(float(m.weight.detach().square().sum()) for m in layers)  # no biases
    got = float(penalty(penalised_parameters(net, include_bias=False), 0.0, 1.0))
    assert got == pytest.approx(expected, rel=1e-6)


def test_a_cnn_seed_trains_the_same_alone_and_in_a_stack(bars: DeviceData) -> None:
    variant = Variant(dropout=0.2, input_dropout=0.1, l2=1e-3, max_norm=2.0, crop=1, flip=True)
    stack = train_stack([spec(variant=variant, seed=s) for s in range(3)], bars)
    for seed in range(3):
        assert_same_run(stack[seed], train(spec(variant=variant, seed=seed), bars))


def test_the_cnn_learns_the_bars(bars: DeviceData) -> None:
    result = train(spec(epochs=6), bars)
    assert result.summary["best_val_accuracy"] > 0.9  # chance is 1/3


# --- the user's network --------------------------------------------------------------------


def test_a_users_network_trains_and_a_seed_is_the_same_in_a_stack(
    bars: DeviceData, user_module
) -> None:
    network = user_module(EXAMPLE)
    variant = Variant(dropout=0.3, input_dropout=0.1, weight_decay=0.1, optimizer="adamw")
    stack = train_stack([spec(network, variant, seed=s) for s in range(2)], bars)
    for seed in range(2):
        assert_same_run(stack[seed], train(spec(network, variant, seed=seed), bars))
    # its BatchNorm statistics moved in training, and are kept with the weights
    state = stack[0].model.state_dict()
    assert any(k.endswith("running_mean") and state[k].abs().sum() > 0 for k in state)


SCALED = """
import math


class Scaled(nn.Module):
    def __init__(self, n_inputs, n_classes):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_classes)
        # computed, not learned: not saved with the weights
        self.register_buffer("scale", torch.full((n_classes,), 2.0), persistent=False)

    def forward(self, x):
        return self.linear(x.flatten(1)) * self.scale


def build(input_shape, n_classes, dropout, input_dropout):
    return Scaled(math.prod(input_shape), n_classes)
"""


def test_a_buffer_the_weights_do_not_hold_keeps_the_networks_value_in_a_stack(
    user_module,
) -> None:
    arch = spec(user_module(SCALED)).architecture(SHAPE, 3)
    weights = build(arch).state_dict()
    assert not [k for k in weights if k.endswith("scale")]
    [net] = stack_of(arch, [weights]).seed_networks()
    [scale] = [b for name, b in net.named_buffers() if name.endswith("scale")]
    assert torch.equal(scale, torch.full((3,), 2.0))
    assert all(torch.equal(net.state_dict()[k], weights[k]) for k in weights)


def test_the_factory_receives_shape_classes_and_dropout(user_module) -> None:
    seen = user_module(
        """
        CALLS = []

        def build(input_shape, n_classes, dropout, input_dropout):
            CALLS.append((input_shape, n_classes, dropout, input_dropout))
            return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes))
        """
    )
    build(spec(seen, Variant(dropout=0.4, input_dropout=0.1)).architecture(SHAPE, 3))
    build(spec(seen, Variant(dropout=[0.1, 0.2])).architecture(SHAPE, 3))
    module = sys.modules[seen.split(":")[0]]
    assert module.CALLS == [((1, 8, 8), 3, 0.4, 0.1), ((1, 8, 8), 3, (0.1, 0.2), 0.0)]


# --- refused before training ---------------------------------------------------------------


def refusal(run_spec: RunSpec, prepared: Prepared | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        check_applicable([run_spec], prepared or images())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_default_technique_applies_to_the_built_in_networks() -> None:
    everything = Variant(
        dropout=0.5, input_dropout=0.2, l1=1e-5, l2=1e-4, weight_decay=0.1, max_norm=3.0
    )
    for network in ("mlp", "cnn"):
        check_applicable([spec(network, everything)], images())


def test_the_cnn_is_refused_on_features_that_are_not_images() -> None:
    flat = images()
    flat = Prepared(flat.train, flat.val, flat.test, {**flat.meta, "input_shape": [64]})
    assert "model.network cnn: the cnn needs image-shaped data" in refusal(spec("cnn"), flat)


def test_augmentation_is_refused_without_images_or_with_per_feature_normalisation() -> None:
    per_feature = images(raw_zero=None)
    message = refusal(spec("mlp", Variant(crop=2)), per_feature)
    assert message.startswith("variants.v.crop cannot apply to the mlp on bars")
    assert "normalised as a whole" in message
    flat = images()
    flat = Prepared(flat.train, flat.val, flat.test, {**flat.meta, "input_shape": [64]})
    assert refusal(spec("mlp", Variant(flip=True)), flat).startswith("variants.v.flip")


def test_a_technique_the_users_network_cannot_take_is_refused(user_module) -> None:
    no_dropout = user_module(
        """
        def build(input_shape, n_classes, dropout, input_dropout):
            return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes))
        """
    )
    assert refusal(spec(no_dropout, Variant(dropout=0.5))).startswith(
        "variants.v.dropout cannot apply"
    )
    no_weights = user_module(
        """
        class Scale(nn.Module):
            def __init__(self, n_classes):
                super().__init__()
                self.scale = nn.Parameter(torch.ones(n_classes))

            def forward(self, x):
                return x.flatten(1)[:, : len(self.scale)] * self.scale

        def build(input_shape, n_classes, dropout, input_dropout):
            return Scale(n_classes)
        """
    )
    for knob, value in (("l1", 1e-4), ("l2", 1e-4), ("weight_decay", 0.1), ("max_norm", 2.0)):
        message = refusal(spec(no_weights, Variant(**{knob: value})))
        assert message.startswith(f"variants.v.{knob} cannot apply")
        assert "linear or convolutional layers" in message
    check_applicable([spec(no_weights, Variant(label_smoothing=0.1, patience=2))], images())


def test_a_users_network_must_not_add_dropout_nobody_asked_for(user_module) -> None:
    always = user_module(
        """
        def build(input_shape, n_classes, dropout, input_dropout):
            return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, n_classes))
        """
    )
    assert "has dropout though the variant sets none" in refusal(spec(always))
    shared = user_module(
        """
        def build(input_shape, n_classes, dropout, input_dropout):
            return nn.Sequential(nn.Dropout2d(dropout), nn.Flatten(), nn.Linear(64, n_classes))
        """
    )
    assert "Dropout2d draws from torch's shared generator" in refusal(
        spec(shared, Variant(dropout=0.5))
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("raise RuntimeError('boom')", "importing"),
        ("def other(): pass", "has no function 'build'"),
        (
            "def build(input_shape, n_classes, dropout, input_dropout):\n    return 'a net'",
            "returned a str, not a torch.nn.Module",
        ),
        (
            "def build(input_shape, n_classes, dropout, input_dropout):\n"
            "    return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes + 1))",
            "gives outputs of shape (2, 4) for a batch of 2; expected (2, 3)",
        ),
        (
            "def build(input_shape, n_classes, dropout, input_dropout):\n"
            "    return nn.Linear(10, n_classes)",
            "fails in its forward pass",
        ),
    ],
    ids=["import-fails", "no-function", "not-a-module", "wrong-outputs", "wrong-inputs"],
)
def test_a_broken_factory_is_one_line_naming_model_network(
    user_module, body: str, fragment: str
) -> None:
    message = refusal(spec(user_module(body)))
    assert message.startswith("model.network") and fragment in message


def test_a_network_file_path_loads_like_a_module(tmp_path: Path) -> None:
    path = tmp_path / "my_net.py"
    path.write_text("from torch import nn\n" + textwrap.dedent(EXAMPLE))
    net = build(spec(f"{path}:build", Variant(dropout=0.1)).architecture(SHAPE, 3))
    assert net(torch.zeros(2, 64)).shape == (2, 3)
    missing = refusal(spec(f"{tmp_path / 'nope.py'}:build"))
    assert missing.startswith("model.network: no file")


# --- augmentation --------------------------------------------------------------------------


def test_a_crop_is_a_window_of_the_padded_image_and_a_flip_its_mirror() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3 * 5 * 6)
    shape, pad, fill = (3, 5, 6), 2, -0.7
    out = augment(x, shape, pad, True, torch.Generator().manual_seed(1), fill)
    padded = torch.nn.functional.pad(x.view(64, *shape), (pad,) * 4, value=fill)
    windows = set()
    for img, got in zip(padded, out.view(64, *shape), strict=True):
        found = []
        for r in range(2 * pad + 1):
            for c in range(2 * pad + 1):
                window = img[:, r : r + 5, c : c + 6]
                found += [(r, c, False)] if torch.equal(got, window) else []
                found += [(r, c, True)] if torch.equal(got, window.flip(-1)) else []
        assert found, "not a window of the padded image, nor its mirror"
        windows.add(found[0])
    # every offset and both orientations turn up over 64 images (25 × 2 outcomes)
    assert len({w[:2] for w in windows}) > 15 and {w[2] for w in windows} == {False, True}


def test_the_gap_is_measured_on_the_images_as_they_are(bars: DeviceData) -> None:
    """Augmentation changes training, not the definitions: the logged train loss is the data
    loss of the un-augmented training split."""
    plain = train(spec(epochs=1), bars)
    augmented = train(spec(variant=Variant(crop=2, flip=True), epochs=1), bars)
    assert augmented.history[0]["train_loss"] != plain.history[0]["train_loss"]
    stack = stack_of(augmented.architecture, [augmented.model.state_dict()])
    loss, _ = evaluate(Compute.of(stack), bars.train)  # one epoch: the best is the last
    assert float(loss[0]) == augmented.history[0]["train_loss"]


def test_architecture_json_of_a_cnn_round_trips() -> None:
    arch = spec(variant=Variant(dropout=[0.1, 0.2, 0.3])).architecture(SHAPE, 3)
    again = Architecture.from_json(arch.to_json())
    assert again == arch and math.prod(again.shape) == again.n_inputs == 64
