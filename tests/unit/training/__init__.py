"""Unit tests of pipeline/training/."""
