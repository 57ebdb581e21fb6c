"""The MLflow model of a run, as a model from code: this file builds the network from the run's
`architecture.json` and loads its `model.safetensors`, so loading it unpickles nothing.

    import mlflow
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")  # or models:/<model id>
    logits = model.predict(x)  # x: float32 (n, n_inputs), normalised as `prepare` did
    network = model.unwrap_python_model().network  # the torch.nn.Module, in eval mode

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
import torch
from safetensors.torch import load_file

from pipeline.core.architecture import BUILT_IN, Architecture
from pipeline.training.model import build
from pipeline.training.user_network import portable

# MLflow asks, as the class is made, for type hints on predict to infer a schema from; this
# model's schema is the signature logged with it: float32 (n, n_inputs) in, logits out.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Add type hints to the `predict` method", UserWarning)

    class Network(mlflow.pyfunc.PythonModel):
        """The network as a pyfunc model: predict gives the logits, (n, n_classes)."""

        def load_context(self, context):
            described = json.loads(Path(context.artifacts["architecture"]).read_text())
            arch = Architecture.from_json(described["architecture"])
            if arch.network not in BUILT_IN:  # its module is among the model's code
                arch = dataclasses.replace(arch, network=portable(arch.network)[1])
            network = build(arch)
            network.load_state_dict(load_file(context.artifacts["weights"]))
            self.network = network.eval()

        # No type hints on these methods: MLflow would take them for the input schema, in
        # place of the signature logged with the model.
        def predict(self, context, model_input, params=None):
            x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
            with torch.no_grad():
                return self.network(x).numpy()


mlflow.models.set_model(Network())
