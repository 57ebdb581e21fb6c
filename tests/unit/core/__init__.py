"""Unit tests of pipeline/core/."""
