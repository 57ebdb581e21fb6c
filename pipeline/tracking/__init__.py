"""MLflow: the store, runs opened and ended, per-epoch metrics, the logged model, the Model
Registry and the UI's view of a study."""
