"""The project's scripts, run from the repository root as `python -m scripts.NAME` where they
import the tests' support (`tests.support`), else as `python scripts/NAME.py`."""
