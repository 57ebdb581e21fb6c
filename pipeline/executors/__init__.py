"""Who runs a list of run specs. A variant's seeds train as one stack
(`tracked_stack.execute_stack`); the executors in this process return the finished runs as
`RunRecord`s, so the outputs and the reports never know which one ran them (the `dvc` executor
hands the study to the DVC stages, which do the same).

- `inprocess` (`local`): in this process, one variant's stack after another;
- `ray` (`on_ray`): one Ray task per stack, on a local Ray instance or a cluster;
- `dvc`: `dvc repro`, the stages of dvc.yaml, one stage per variant, each of which runs its
  stack here. Variations of the whole study run in parallel with `dvc exp run --queue -S ...`
  and `dvc queue start -j N` (see `make noise`).
"""

EXECUTORS = ("inprocess", "dvc", "ray")
