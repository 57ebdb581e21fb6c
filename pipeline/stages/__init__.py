"""The stages, each a thin function in a module of its own: read its inputs, call the library,
write its outputs.

They are the commands of `python -m pipeline` and the stages of dvc.yaml (`prepare`,
`train@<variant>`, `rounds`, `report`; `sweep-<technique>@...` and `sweep-report` in
sweep-stages/dvc.yaml), plus `compare` across studies and the Ray executor's training of
`study` (`train_on_ray`). A stage's module is one of its DVC dependencies, so one module per
stage keeps an edit to the report from retraining the variants. No module imports a stage but
the command line (`cli`), which imports each by name as it runs.
"""
