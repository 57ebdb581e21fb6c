"""The MLflow model of a run, as a model from code: this file builds the network from the run's
`architecture.json` and loads its `model.safetensors`, so loading it unpickles nothing.

    import mlflow
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")  # or models:/<model id>
    logits = model.predict(x)  # x: float32 (n, n_inputs), normalised as `prepare` did
    network = model.unwrap_python_model().network  # the torch.nn.Module, in eval mode

MLflow runs this file when it loads the model; `pipeline/model.py` travels with it (the
model's `code/`), so it loads where the project is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from safetensors.torch import load_file

from pipeline.model import Architecture, build_mlp


class Network(mlflow.pyfunc.PythonModel):
    """The network as a pyfunc model: predict gives the logits, (n, n_classes)."""

    def load_context(self, context: Any) -> None:
        described = json.loads(Path(context.artifacts["architecture"]).read_text())
        network = build_mlp(Architecture.from_json(described["architecture"]))
        network.load_state_dict(load_file(context.artifacts["weights"]))
        self.network = network.eval()

    def predict(self, context: Any, model_input: Any, params: Any = None) -> np.ndarray:
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.network(x).numpy()


mlflow.models.set_model(Network())
