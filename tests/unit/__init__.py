"""Unit tests, one folder per layer of the package, one file per module where it has its own."""
