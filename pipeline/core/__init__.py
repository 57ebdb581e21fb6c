"""The core every layer shares, torch-free: the configuration and its loading, the registries
of techniques and metrics, run specs and records, paths, files, errors, signals."""
