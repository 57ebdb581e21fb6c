"""Who runs a list of run specs. Each spec is one `run.execute_run`; the executors in this
process return the finished runs as `RunRecord`s, so the outputs and the reports never know
which one ran them (the `dvc` executor hands the study to the DVC stages, which do the same).

- `inprocess` (`local`): in this process, one spec after another (on a GPU, or with
  `train.parallel: 1`), or on a CPU side by side in forked workers (`forked`);
- `ray` (`on_ray`): one Ray task per spec, on a local Ray instance or a cluster;
- `dvc`: `dvc repro`, the stages of dvc.yaml, one stage per variant, each of which runs its
  specs here. Variations of the whole study run in parallel with `dvc exp run --queue -S ...`
  and `dvc queue start -j N` (see `make noise`).
"""

EXECUTORS = ("inprocess", "dvc", "ray")
