"""params.yaml and command-line values, read into the typed configuration of `config`.

YAML is read as YAML 1.2 (`1e-4` is a float, as DVC reads it too). Any problem becomes one
line that names the file or the key, what is wrong and the value given: a `ConfigError`.
Overrides (`train --KNOB VALUE`, `mlflow run -P KNOB=VALUE`) are validated like params.yaml.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .config import Params, TrainConfig
from .errors import ConfigError
from .techniques import TECHNIQUES
from .variant import Variant

# Labels pydantic adds to an error's location for the members of a union: not keys.
_UNION_MEMBER = re.compile(
    r"(constrained-)?(float|int|str|bool)|list\[.*\]|function-.*|seeds-(list|rounds)"
)


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-4` is a string; people (and DVC) mean a float. And a
    key written twice in one mapping is refused: PyYAML keeps the last silently, and other
    parsers (DVC's among them) may not agree on which one counts."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` brings keys, is not one
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} written twice in one mapping (lines {seen[key]} and {line})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, with YAML 1.2 floats; a file that is not UTF-8 text or not valid
    YAML becomes a ConfigError naming the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (line {line}: byte 0x{raw[e.start]:02x}); save it as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One line naming the first offending key, what is wrong and the value given."""
    first = error.errors()[0]
    parts = [str(p) for p in first["loc"] if not _UNION_MEMBER.fullmatch(str(p))]
    key = ".".join(parts) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}"
    if first["type"] == "missing":
        return f"{source}: {key}: required but missing"
    value = first.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    if isinstance(value, float) and not math.isfinite(value):
        message = "must be a finite number"
    return f"{source}: {key}: {message}{shown}"


# The `train` keys a variant cannot override: every one but the optimizer (the learning rate
# and its schedule among them: what a variant changes is its regularization).
SHARED_TRAIN_KEYS = frozenset(TrainConfig.model_fields) - frozenset(Variant.model_fields)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed mapping into Params, or raise a one-line ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    variants = raw.get("variants")
    for name, variant in variants.items() if isinstance(variants, dict) else ():
        if not isinstance(variant, dict):
            continue
        if "description" in variant:
            raise ConfigError(
                f"{source}: variants.{name}.description: write what a variant tests as a "
                f"comment (`{name}:  # ...`); as a key it is a parameter its train stage "
                "depends on, and editing it would retrain the variant"
            )
        shared = [k for k in variant if k in SHARED_TRAIN_KEYS]
        if shared:
            raise ConfigError(
                f"{source}: variants.{name}.{shared[0]}: a training setting every variant "
                f"shares; set train.{shared[0]} (a variant may override only the optimizer)"
            )
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, source)) from None


def load_params(path: Path) -> Params:
    """Read and validate `params.yaml`."""
    return parse_params(read_yaml(path), source=path.name)


# --- overrides (`train --KEY VALUE`, `mlflow run -P KEY=VALUE`) -------------------------------

VARIANT_KNOBS = (*(t.knob for t in TECHNIQUES), "penalize_bias", "optimizer")
TRAIN_KNOBS = (
    *("lr", "epochs", "batch_size", "momentum", "device", "precision", "compile"),
    *("parallel", "threads"),
    *("lr_schedule", "lr_step_size", "lr_gamma", "lr_pct_start"),
)
MODEL_KNOBS = ("network", "hidden_sizes", "channels", "activation")
OVERRIDABLE = (*VARIANT_KNOBS, *MODEL_KNOBS, *TRAIN_KNOBS, "seed")


def parse_value(text: str) -> Any:
    """A command-line value read as YAML 1.2: `0.5`, `1e-4`, `[0.2, 0.5]`, `true`, `adamw`."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError:
        return text


def with_overrides(params: Params, variant: str, overrides: dict[str, str]) -> Params:
    """`params` with knobs of `variant` (and shared training knobs) replaced, re-validated.

    Variant knobs change only that variant; `seed` trains that one seed. `params.yaml` itself
    is never edited.
    """
    params.variant(variant)
    raw = params.model_dump()
    for key, text in overrides.items():
        value = parse_value(text)
        if key in VARIANT_KNOBS:
            raw["variants"][variant][key] = value
        elif key in MODEL_KNOBS:
            raw["model"][key] = text if key == "network" else value
        elif key in TRAIN_KNOBS:
            raw["train"][key] = value
        elif key == "seed":
            raw["train"]["seeds"] = [value]
        else:
            raise ConfigError(f"unknown override {key!r} (known: {', '.join(OVERRIDABLE)})")
    return parse_params(raw, source="override")
