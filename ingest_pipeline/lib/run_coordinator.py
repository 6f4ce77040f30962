"""Dagster's run queue, which first gives a run of a source instance that instance's run tags.

The queue (the `concurrency.runs` block of dagster.yaml) allows one run at a time per
`ingest/source_instance` and a share of the run slots per `ingest/tenant`, and it knows a run
only by its tags. Every run of an `ingest_<type>` job's partition has them (the job's
partitioned config, the schedules' requests), but a raw partition materialized another way did
not: the asset page's Materialize and an asset backfill run Dagster's implicit asset job, whose
runs carry `dagster/partition` alone. Such a run went past the queue's limits: beside the
instance's scheduled run, in the same dlt pipeline (one of the two failed, its load package
taken by the other: `LoadPackageNotFound`), and outside its tenant's share.

`InstanceQueuedRunCoordinator` is Dagster's QueuedRunCoordinator (same config, same daemon) that
adds the missing instance tags (`instance_run_tags`) to a run of one raw asset's partition when
it is submitted, before the queue reads them, whoever submits it (webserver, schedule, sensor or
backfill daemon, `dagster job launch`). Other runs are queued as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from ingest_pipeline.domain.tenants import instance_run_tags
from ingest_pipeline.lib.source_types import type_names

PARTITION_TAG = "dagster/partition"
RAW_PREFIX = "raw"


class InstanceQueuedRunCoordinator(dg.QueuedRunCoordinator):
    """QueuedRunCoordinator that tags each run of a source instance with its instance's tags."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        missing = missing_instance_tags(run.job_name, run.asset_selection, run.tags)
        if missing and run.status == dg.DagsterRunStatus.NOT_STARTED:
            self._instance.add_run_tags(run.run_id, missing)
            tagged = self._instance.get_run_by_id(run.run_id)
            if tagged is not None:
                context = dg.SubmitRunContext(tagged, context.workspace)
        return super().submit_run(context)


def missing_instance_tags(
    job_name: str, asset_selection: Iterable[dg.AssetKey] | None, tags: Mapping[str, str]
) -> dict[str, str]:
    """The instance tags a run lacks: for a run of one source type's raw partition (its
    `ingest_<type>` job, or its raw asset alone), those of `instance_run_tags` it has not got;
    for any other run, none."""
    partition = tags.get(PARTITION_TAG)
    source_type = raw_source_type(job_name, asset_selection)
    if not partition or source_type is None or "." not in partition:
        return {}
    return {k: v for k, v in instance_run_tags(source_type, partition).items() if k not in tags}


def raw_source_type(job_name: str, asset_selection: Iterable[dg.AssetKey] | None) -> str | None:
    """The source type whose raw partition the run materializes, if it is one type's alone."""
    known = set(type_names())
    if job_name.startswith("ingest_") and job_name.removeprefix("ingest_") in known:
        return job_name.removeprefix("ingest_")
    types = {
        key.path[1]
        for key in asset_selection or ()
        if len(key.path) == 3 and key.path[0] == RAW_PREFIX and key.path[1] in known
    }
    return types.pop() if len(types) == 1 else None
