"""Checks of the repository as a whole: the layers and the DVC stages' code, the docs."""
