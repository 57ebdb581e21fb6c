"""Unit tests of pipeline/tracking/."""
