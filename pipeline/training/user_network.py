"""The user's own network: a function named in `model.network`, as `package.module:function`
(importable from the project's root) or `path/to/file.py:function`, that receives the input
shape, the number of classes and the variant's dropout settings and returns a `torch.nn.Module`
of (B, *input_shape) -> (B, n_classes) logits:

    def build(input_shape: tuple[int, ...], n_classes: int, dropout: float | tuple[float, ...],
              input_dropout: float) -> torch.nn.Module

`dropout` is the variant's `dropout` as params.yaml gives it (one rate, or one per hidden
block as the network defines its blocks); dropout must reach the network as `nn.Dropout`
modules, so that each seed draws its own masks. See the README and `networks/`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from torch import nn

from ..core.errors import ConfigError


def split_reference(reference: str) -> tuple[str, str]:
    """`module:function` or `file.py:function` -> (where, function)."""
    where, _, function = reference.rpartition(":")
    return where, function


def _module(where: str) -> ModuleType:
    if where.endswith(".py"):
        path = Path(where).resolve()
        name = f"_network_{path.stem}"
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        if not path.is_file():
            try:  # on a Ray worker elsewhere, its folder shipped as a package (`ship`)
                return importlib.import_module(_shipped(where))
            except ImportError:
                raise ConfigError(f"model.network: no file {where}") from None
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(where)


def factory(reference: str) -> Callable[..., nn.Module]:
    """The function `reference` names, or a ConfigError that says what is wrong."""
    where, name = split_reference(reference)
    try:
        module = _module(where)
    except ConfigError:
        raise
    except Exception as e:  # the user's code: any error while importing it
        raise ConfigError(
            f"model.network: importing {where} failed ({type(e).__name__}: {e})"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"model.network: {where} has no function {name!r}")
    return function


def source_file(reference: str) -> Path:
    """The file of the module that defines the user's network."""
    return Path(inspect.getfile(factory(reference))).resolve()


def portable(reference: str) -> tuple[Path, str]:
    """Where the network's module goes among an MLflow model's code (a path relative to
    it), and the reference that imports it from there: `path/x.py:f` -> (x.py, `x:f`),
    `pkg.mod:f` -> (pkg/mod.py, `pkg.mod:f`)."""
    where, function = split_reference(reference)
    if where.endswith(".py"):
        stem = Path(where).stem
        return Path(f"{stem}.py"), f"{stem}:{function}"
    return Path(*where.split(".")).with_suffix(".py"), reference


def _shipped(where: str) -> str:
    """The module a file `dir/name.py` is on a Ray worker, its folder shipped (`ship`)."""
    return f"{Path(where).parent.resolve().name}.{Path(where).stem}"


def ship(reference: str) -> list[str]:
    """The folders a Ray worker needs to import the network `reference` names: the folder
    of a file, or the top-level package of a module when it lives in this folder."""
    where, _ = split_reference(reference)
    if where.endswith(".py"):
        return [str(Path(where).resolve().parent)]
    top = Path(where.split(".")[0]).resolve()
    return [str(top)] if top.is_dir() else []


def call_factory(
    reference: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    dropout: tuple[float, ...],
    input_dropout: float,
) -> nn.Module:
    """The user's network, as the factory `reference` names builds it (shaped input)."""
    rates: float | tuple[float, ...] = dropout[0] if len(dropout) == 1 else tuple(dropout)
    try:
        network = factory(reference)(
            input_shape=input_shape,
            n_classes=n_classes,
            dropout=rates,
            input_dropout=input_dropout,
        )
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"model.network: {reference} failed ({type(e).__name__}: {e})") from None
    if not isinstance(network, nn.Module):
        raise ConfigError(
            f"model.network: {reference} returned a {type(network).__name__}, not a torch.nn.Module"
        )
    return network
