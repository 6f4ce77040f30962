"""One sensor per landing kind (generated from defs/landing/kinds.py: LANDING_SENSORS): each new
object in `<kind>/` becomes part of a processing run.

Nothing is missed and nothing is processed twice: the cursor keeps the newest LastModified
second and the object versions (key@ETag) already taken within it (S3 time has one-second
resolution), every tick takes at most `INGEST_LANDING_OBJECTS_PER_TICK` objects, oldest first,
and hands them to runs of at most `INGEST_LANDING_OBJECTS_PER_RUN`, each with a run key made of
its object versions, so a tick evaluated twice launches nothing twice. A run holds one tenant's
objects only and carries its `ingest/tenant` tag: the run queue's cap per tenant applies, and
one tenant's bad upload fails no other tenant's run. Empty objects, keys
outside the layout and unknown tenants are recorded Failed with the reason and logged on the tick.

Uploads to take again (Queued after a transient fault, left Processing by a run that died or
failed: see domain/uploads.py) are looked for every `INGEST_LANDING_RETRY_CHECK_SECONDS` and on
every tick with new objects, and launched in runs of their own.

A tick whose dependency is down (the object store unreachable or without the bucket, the
tenants file missing, the DuckDB file held by another process for longer than a tick can
wait) skips with one line saying which, keeps its cursor, and takes the objects next time.
"""

import hashlib
import time
from collections.abc import Sequence
from functools import partial

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3.sensor import get_objects

from ingest_pipeline.defs.landing.kinds import LANDING_KINDS, LandingKind, landing_kind
from ingest_pipeline.defs.landing.resources import LandingBucketResource
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.landing_cursor import LandingCursor, batched, take_new
from ingest_pipeline.domain.tenants import TENANT_TAG, TenantsFileError, tenant_names
from ingest_pipeline.domain.uploads import (
    LandedObject,
    QueueOutcome,
    RetryOutcome,
    RunStates,
    queue_objects,
    record_launches,
    uploads_to_retry,
)
from ingest_pipeline.lib.resources import WarehouseResource
from ingest_pipeline.lib.warehouse import WarehouseBusyError
from ingest_pipeline.settings import get_settings

# A tick must end well within Dagster's sensor evaluation timeout (60 s).
TICK_LOCK_WAIT_SECONDS = 20
LANDING_RUN_PRIORITY = "10"
RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster gives a run launched under a run key


def batch_run_key(kind: str, batch: Sequence[LandedObject], retry_at: float | None = None) -> str:
    """Made of the object versions (a tick evaluated twice launches nothing twice); a retry's
    also of the time it was decided, as the versions of its first run are the same."""
    versions = "\n".join(o.version for o in batch)
    retry = f"retry@{retry_at:.0f}:" if retry_at is not None else ""
    return f"{kind}:{retry}{len(batch)}:{hashlib.sha1(versions.encode()).hexdigest()}"


def run_request(
    kind: str, batch: Sequence[LandedObject], retry_at: float | None = None
) -> dg.RunRequest:
    op_name = landing_kind(kind).op_name
    [tenant] = {o.tenant_id for o in batch}  # one tenant a run (`per_tenant_batches`)
    return dg.RunRequest(
        run_key=batch_run_key(kind, batch, retry_at),
        run_config={"ops": {op_name: {"config": {"objects": [o.as_config() for o in batch]}}}},
        # Uploads are what a user waits for: ahead of scheduled pulls in the run queue.
        tags={
            TENANT_TAG: tenant,
            "ingest/landing_kind": kind,
            "ingest/objects": str(len(batch)),
            "dagster/priority": LANDING_RUN_PRIORITY,
        },
    )


def landing_sensor(declared: LandingKind) -> dg.SensorDefinition:
    kind, prefix = declared.name, declared.layout.prefix

    @dg.sensor(
        name=declared.sensor_name,
        job_name=declared.job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New objects under {prefix} in the landing bucket, processed in batches.",
    )
    def sensor(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        landing_bucket: LandingBucketResource,
    ) -> dg.SensorResult:
        settings = get_settings()
        cursor = LandingCursor.from_json(context.cursor)
        bucket = landing_bucket.get_bucket()
        try:
            listing = get_objects(
                bucket,
                prefix=prefix,
                since_last_modified=cursor.list_since,
                client=landing_bucket.get_client(),
            )
        except (BotoCoreError, ClientError) as exc:
            return _skip(context, f"landing bucket {bucket} unreachable: {_first_line(exc)}")
        taken, next_cursor = take_new(listing, cursor, settings.landing_objects_per_tick)
        now = time.time()
        check_retries = (
            now - (cursor.retries_checked_at or 0) >= settings.landing_retry_check_seconds
        )
        if not taken and not check_retries:
            return dg.SensorResult(skip_reason=f"no new objects under {prefix}")
        try:
            # Only looking for retries: no need to wait long for a busy file, next tick will do.
            wh = warehouse.get(lock_wait_seconds=TICK_LOCK_WAIT_SECONDS if taken else 2)
            init_warehouse(wh)
            outcome = (
                queue_objects(wh, kind, taken, tenant_names(settings.tenants_file))
                if taken
                else QueueOutcome()
            )
            retries = (
                uploads_to_retry(wh, kind, partial(run_states, context.instance))
                if check_retries
                else RetryOutcome()
            )
            requests = _run_requests(kind, outcome.queued, retries.retry, now)
            record_launches(wh, {r.run_key: _upload_ids(r) for r in requests if r.run_key})
        except (TenantsFileError, WarehouseBusyError) as exc:
            # The cursor stays: these objects are taken next time.
            return _skip(context, str(exc))
        if check_retries:
            next_cursor.retries_checked_at = now
        _log_outcome(context, outcome, retries)
        if taken or requests:
            context.log.info(
                f"{len(taken)} new objects: {len(outcome.queued)} queued, "
                f"{len(outcome.refused)} refused, {len(outcome.already_done)} already done; "
                f"{len(retries.retry)} taken again, {len(retries.given_up)} given up; "
                f"{len(requests)} runs"
            )
        return dg.SensorResult(
            run_requests=requests,
            cursor=next_cursor.to_json(),
            skip_reason=None if requests else _nothing_to_run(kind, taken),
        )

    return sensor


def _run_requests(
    kind: str, new: Sequence[LandedObject], again: Sequence[LandedObject], now: float
) -> list[dg.RunRequest]:
    per_run = get_settings().landing_objects_per_run
    requests = [run_request(kind, batch) for batch in per_tenant_batches(new, per_run)]
    return requests + [
        run_request(kind, batch, now) for batch in per_tenant_batches(again, per_run)
    ]


def per_tenant_batches(objects: Sequence[LandedObject], size: int) -> list[list[LandedObject]]:
    """The objects in runs of at most `size`, each of one tenant; tenants in the order of their
    oldest object, each tenant's objects in their own order."""
    by_tenant: dict[str, list[LandedObject]] = {}
    for landed in objects:
        by_tenant.setdefault(landed.tenant_id, []).append(landed)
    return [batch for group in by_tenant.values() for batch in batched(group, size)]


def _upload_ids(request: dg.RunRequest) -> list[str]:
    [op_config] = request.run_config["ops"].values()
    return [o["upload_id"] for o in op_config["config"]["objects"]]


def run_states(instance: dg.DagsterInstance, run_ids: list[str], run_keys: list[str]) -> RunStates:
    """Dagster's status of the runs that still exist, by run id and by run key."""
    by_id = instance.get_run_records(dg.RunsFilter(run_ids=run_ids)) if run_ids else []
    by_key = (
        instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: run_keys})) if run_keys else []
    )
    return RunStates(
        {r.dagster_run.run_id: r.dagster_run.status.value for r in by_id},
        {r.dagster_run.tags[RUN_KEY_TAG]: r.dagster_run.status.value for r in by_key},
    )


def _log_outcome(
    context: dg.SensorEvaluationContext, outcome: QueueOutcome, retries: RetryOutcome
) -> None:
    for key, reason in outcome.refused:
        context.log.warning(f"{key}: not processed: {reason}")
    for key in outcome.already_done:
        context.log.info(f"{key}: this version already completed; not processed again")
    for key, reason in retries.given_up:
        context.log.warning(f"{key}: Failed: {reason}")


def _nothing_to_run(kind: str, taken: Sequence[object]) -> str:
    if taken:
        return f"{len(taken)} new objects, none to process"
    return f"no new objects under {kind}/, none to take again"


def _skip(context: dg.SensorEvaluationContext, reason: str) -> dg.SensorResult:
    context.log.warning(reason)
    return dg.SensorResult(skip_reason=reason)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


LANDING_SENSORS = [landing_sensor(kind) for kind in LANDING_KINDS]
