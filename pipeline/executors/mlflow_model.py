"""A finished seed's MLflow model: `tracking/logged_model.py` as a model from code over the
seed's files (weights, architecture, normalisation), with the code it imports, an input
example and signature on raw inputs, and pinned requirements."""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core.config import ModelConfig
from ..core.records import RunRecord
from ..training import user_network
from ..training.device import DeviceData

PACKAGE = Path(__file__).resolve().parent.parent
# What an MLflow model's code holds of this package: the modules `tracking/logged_model.py`
# imports, and theirs, by their paths in the package (tests/project/test_stage_deps.py keeps it so).
MODEL_CODE = (
    "core/architecture.py",
    "core/errors.py",
    "training/model.py",
    "training/user_network.py",
)

# Given explicitly: MLflow's inference of a model's requirements costs seconds per run.
PIP_REQUIREMENTS = [
    f"torch=={torch.__version__.split('+')[0]}",
    f"safetensors=={importlib.metadata.version('safetensors')}",
]


def _check_requirements_without_a_package_scan() -> None:
    """MLflow checks a model's requirements against the installed versions, and first maps
    every installed package's modules to it, once a process (0.85 s here: docs/performance.md).
    The map serves requirements named by module; these (and the `mlflow` it adds) are named by
    distribution, whose versions it reads without the map. So MLflow is given an empty map:
    the check is the same, without the scan."""
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, "_MODULES_TO_PACKAGES", {}) is None:
        requirements_utils._MODULES_TO_PACKAGES = {}


def log_model(record: RunRecord, network: nn.Module, data: DeviceData, model: ModelConfig) -> str:
    """The MLflow model (`tracking/logged_model.py`, a model from code over the run's weights
    files), which takes raw inputs, with an input example and signature, and pinned
    requirements; its model id. Its code holds what `tracking/logged_model.py` imports, no
    more: the network modules and, for the user's network (`model.network`), that network's
    own module."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    _check_requirements_without_a_package_scan()
    normalised = data.val.x[:5].cpu()
    example = normalised.numpy() * data.normalization.std + data.normalization.mean  # raw again
    with torch.no_grad():
        probabilities = torch.softmax(network.cpu().eval()(normalised), dim=1)
    output = pd.DataFrame(
        {"class": probabilities.argmax(dim=1).numpy(), "probabilities": list(probabilities.numpy())}
    )
    with warnings.catch_warnings():
        # MLflow's hint that an integer column cannot hold a missing value: `class` is an
        # output, never missing.
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(example, output)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, content in record.model_files.items():
            files[name] = Path(tmp) / name
            files[name].write_bytes(content)
        code = Path(tmp) / "code"
        package = code / "pipeline"
        package.mkdir(parents=True)
        for module in MODEL_CODE:
            (package / module).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PACKAGE / module, package / module)
        for folder in {package, *((package / m).parent for m in MODEL_CODE)}:
            (folder / "__init__.py").write_text("")  # empty: importing runs nothing else
        if not model.built_in:
            place, _ = user_network.portable(model.network)
            (code / place).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(user_network.source_file(model.network), code / place)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PACKAGE / "tracking" / "logged_model.py"),
            artifacts={
                "weights": str(files["model.safetensors"]),
                "architecture": str(files["architecture.json"]),
                "normalization": str(files["normalization.safetensors"]),
            },
            code_paths=[str(p) for p in code.iterdir()],
            input_example=example,
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
        ).model_id
