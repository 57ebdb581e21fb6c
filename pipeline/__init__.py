"""A reproducible, MLflow-tracked, DVC-driven study of overfitting and regularization."""
