"""Unit tests of pipeline/data/."""
