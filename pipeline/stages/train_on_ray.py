"""The training of `study --executor ray`: every variant × seed as one Ray task each, then
every variant's `models/` and `metrics/`. A run that fails does not stop the others: the
report names it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ..core.config import Params
from ..core.errors import StudyIncomplete
from ..core.paths import Layout
from ..core.records import MissingRun, RunRecord
from ..core.signals import signals_held
from ..core.spec import RunSpec, study_specs
from ..data.prepared import Pool
from ..executors import on_ray
from ..executors.tracked_stack import RunContext
from ..outputs import variant_files
from ..tracking import store
from ..training import user_network
from ..training.applicable import check_applicable


@dataclass(frozen=True)
class RayPlan:
    address: str | None  # None: start a Ray instance on this machine
    resources: on_ray.Resources
    modules: list[str]  # folders the workers import the user's network from


def plan(params: Params, address: str | None, cpus: float | None, gpus: float | None) -> RayPlan:
    """Where the tasks run and what each asks for; a cluster that cannot be reached or a
    setting that cannot work fails here, before anything is prepared."""
    address = on_ray.ray_address(address)
    gpus = on_ray.default_gpus(params) if gpus is None else gpus
    on_ray.check_settings(address, params, gpus)
    network = params.model.network
    modules = [] if params.model.built_in else user_network.ship(network)
    return RayPlan(address, on_ray.Resources(cpus or 1.0, gpus), modules)


def session(plan: RayPlan) -> AbstractContextManager[None]:
    """Connected to Ray (a new local instance, or the cluster) for the block. Entered before
    the data is prepared: a cluster none of whose nodes could run a run fails here."""
    return on_ray.ray_session(plan.address, plan.resources, plan.modules)


def train_on_ray(params: Params, layout: Layout, pool: Pool, plan: RayPlan) -> list[MissingRun]:
    """Inside a `session`: train the grid; write every variant's outputs; return the runs that
    did not finish. Where no run of the baseline finished, nothing is written: the old outputs
    and report stay, consistent with each other."""
    specs = study_specs(params)
    check_applicable(specs, pool)
    context = RunContext.of(params.mlflow, pool, tags=store.context_tags())
    records, missing = on_ray.run_on_ray(specs, pool, params, context, plan.resources)
    baseline = params.report.baseline
    if not any(r.variant == baseline for r in records):
        raise StudyIncomplete(
            f"no run of the baseline {baseline!r} finished, so nothing can be compared; "
            "outputs and report are left as they were. Did not finish: "
            + ", ".join(m.run_name for m in missing)
        )
    with signals_held():  # every variant's outputs, or none: a signal waits for the writes
        for name in params.variants:
            variant_files.write_variant(
                layout,
                name,
                [r for r in records if r.variant == name],
                [m for m in missing if m.variant == name],
            )
    return missing


class RoundsOnRay:
    """Inside a `session`: who trains the rounds' seeds on `pool` (a `rounds.RoundExecutor`),
    as Ray tasks too; the runs of theirs that do not finish are kept in `missing`."""

    def __init__(self, params: Params, plan: RayPlan, pool: Pool) -> None:
        self.params, self.plan, self.pool = params, plan, pool
        self.missing: list[MissingRun] = []

    def __call__(
        self,
        specs: list[RunSpec],
        context: RunContext,
        on_finished: Callable[[RunRecord], None],
    ) -> tuple[list[RunRecord], list[MissingRun]]:
        resources = self.plan.resources
        records, lost = on_ray.run_on_ray(
            specs, self.pool, self.params, context, resources, on_finished
        )
        self.missing += lost
        return records, lost
