"""Unit tests of pipeline/outputs/."""
