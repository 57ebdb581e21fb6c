"""The only reader and writer of the stages' outputs: `models/`, `metrics/` (`variant_files`),
`rounds/` (`round_files`) and `sweeps/` (`sweep_files`).

Each is written in one step once its runs have finished, so DVC never takes a half-written
folder for a result. They hold results only: each run's MLflow run id and seconds go to
`logs/` (`Layout`), which DVC does not hash, so repeating the same training changes no hashed
byte.
"""
