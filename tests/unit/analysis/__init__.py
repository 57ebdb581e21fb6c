"""Unit tests of pipeline/analysis/."""
