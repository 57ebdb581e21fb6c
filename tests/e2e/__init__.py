"""End-to-end tests: the real dvc, mlflow and python -m pipeline commands in scratch copies of
the repository, real stores and servers."""
