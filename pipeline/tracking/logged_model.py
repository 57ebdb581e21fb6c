"""The MLflow model of a run, as a model from code: this file builds the network from the run's
`architecture.json`, loads its `model.safetensors` and the normalisation of the data it was
trained on (`normalization.safetensors`), so loading it unpickles nothing.

It takes the inputs as the data gives them, one row per example (an image flattened:
`x.reshape(len(x), -1)`), normalises them as `prepare` did the run's training data, and
answers each with its class and the class probabilities:

    import mlflow
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")  # or models:/<name>@recommended
    answer = model.predict(x)  # x: (n, n_features) raw; answer: columns class, probabilities
    network = model.unwrap_python_model().network  # the torch.nn.Module (normalised inputs)

`mlflow models serve` serves the same: `{"inputs": [[...], ...]}` in, one
`{"class": ..., "probabilities": [...]}` per row out.

MLflow runs this file when it loads the model; the network's modules (`pipeline/training/model.py`,
and the user's own module for a network of their own) travel with it (the model's `code/`), so
it loads where the project is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from pipeline.core.architecture import BUILT_IN, Architecture
from pipeline.training.model import build
from pipeline.training.user_network import portable

# MLflow asks, as the class is made, for type hints on predict to infer a schema from; this
# model's schema is the signature logged with it: float32 (n, n_features) raw inputs in, a
# class and the class probabilities per row out.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Add type hints to the `predict` method", UserWarning)

    class Network(mlflow.pyfunc.PythonModel):
        """The network as a pyfunc model on raw inputs (see the module's docstring)."""

        def load_context(self, context):
            described = json.loads(Path(context.artifacts["architecture"]).read_text())
            arch = Architecture.from_json(described["architecture"])
            if arch.network not in BUILT_IN:  # its module is among the model's code
                arch = dataclasses.replace(arch, network=portable(arch.network)[1])
            network = build(arch)
            network.load_state_dict(load_file(context.artifacts["weights"]))
            self.network = network.eval()
            self.n_features = arch.n_inputs
            normalization = load_file(context.artifacts["normalization"])
            self.mean, self.std = normalization["mean"], normalization["std"]

        # No type hints on these methods: MLflow would take them for the input schema, in
        # place of the signature logged with the model.
        def predict(self, context, model_input, params=None):
            x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
            x = x.reshape(len(x), -1)
            if x.shape[1] != self.n_features:
                raise ValueError(
                    f"each example must have {self.n_features} features, got {x.shape[1]}"
                )
            with torch.no_grad():
                probabilities = torch.softmax(self.network((x - self.mean) / self.std), dim=1)
            return pd.DataFrame(
                {
                    "class": probabilities.argmax(dim=1).numpy(),
                    "probabilities": list(probabilities.numpy()),
                }
            )


mlflow.models.set_model(Network())
