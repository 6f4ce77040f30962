"""Process what waits in the landing bucket now, without the daemon: evaluate each landing sensor
once and execute the runs it requests through Dagster (recorded in the instance like any run).

The demo uses this; under `dagster dev` or the daemon the sensors tick by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from ingest_pipeline.cli.metrics_runs import console_config
from ingest_pipeline.defs.landing.kinds import LANDING_KINDS, LandingKind


@dataclass
class LandingTick:
    kind: str
    runs: int
    failed_runs: int
    skip_reason: str | None


def process_landing(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    kinds: tuple[LandingKind, ...] = LANDING_KINDS,
) -> list[LandingTick]:
    """One tick per kind from an empty cursor: objects whose version already completed are
    skipped by the uploads table, so evaluating again processes only what is new or failed."""
    ticks = []
    for kind in kinds:
        sensor = defs.resolve_sensor_def(kind.sensor_name)
        context = dg.build_sensor_context(instance=instance, resources=defs.resources)
        result = sensor(context)
        job = defs.resolve_job_def(kind.job_name)
        failed = 0
        for request in result.run_requests or []:
            run = job.execute_in_process(
                run_config={**request.run_config, **console_config(job)},
                instance=instance,
                tags=request.tags,
                raise_on_error=False,
            )
            failed += not run.success
        skip = result.skip_reason.skip_message if result.skip_reason else None
        ticks.append(LandingTick(kind.name, len(result.run_requests or []), failed, skip))
    return ticks
