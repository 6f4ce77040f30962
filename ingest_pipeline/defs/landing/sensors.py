"""One sensor per landing kind: each new object in `<kind>/` becomes part of a processing run.

Nothing is missed and nothing is processed twice: the cursor keeps the newest LastModified
second and the object versions (key@ETag) already taken within it (S3 time has one-second
resolution), every tick takes at most `INGEST_LANDING_OBJECTS_PER_TICK` objects, oldest first,
and hands them to runs of at most `INGEST_LANDING_OBJECTS_PER_RUN`, each with a run key made of
its object versions, so a tick evaluated twice launches nothing twice. Empty objects, keys
outside the layout and unknown tenants are recorded Failed with the reason and logged on the tick.

A tick whose dependency is down (the object store unreachable or without the bucket, the
tenants file missing, the DuckDB file held by another process for longer than a tick can
wait) skips with one line saying which, keeps its cursor, and takes the objects next time.
"""

import hashlib
from collections.abc import Sequence

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3.sensor import get_objects

from ingest_pipeline.defs.landing.assets import ASSET_KEYS, job_name
from ingest_pipeline.defs.landing.resources import LandingBucketResource
from ingest_pipeline.lib.landing_cursor import LandingCursor, batched, take_new
from ingest_pipeline.lib.normalized_tables import init_warehouse
from ingest_pipeline.lib.resources import WarehouseResource
from ingest_pipeline.lib.tenants import TenantsFileError, tenant_names
from ingest_pipeline.lib.uploads import LandedObject, queue_objects
from ingest_pipeline.lib.warehouse import WarehouseBusyError
from ingest_pipeline.settings import get_settings

# A tick must end well within Dagster's sensor evaluation timeout (60 s).
TICK_LOCK_WAIT_SECONDS = 20
LANDING_RUN_PRIORITY = "10"


def batch_run_key(kind: str, batch: Sequence[LandedObject]) -> str:
    versions = "\n".join(o.version for o in batch)
    return f"{kind}:{len(batch)}:{hashlib.sha1(versions.encode()).hexdigest()}"


def run_request(kind: str, batch: Sequence[LandedObject]) -> dg.RunRequest:
    op_name = ASSET_KEYS[kind].to_python_identifier()
    return dg.RunRequest(
        run_key=batch_run_key(kind, batch),
        run_config={"ops": {op_name: {"config": {"objects": [o.as_config() for o in batch]}}}},
        # Uploads are what a user waits for: ahead of scheduled pulls in the run queue.
        tags={
            "ingest/landing_kind": kind,
            "ingest/objects": str(len(batch)),
            "dagster/priority": LANDING_RUN_PRIORITY,
        },
    )


def landing_sensor(kind: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"landing_{kind}_sensor",
        job_name=job_name(kind),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New objects under {kind}/ in the landing bucket, processed in batches.",
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
                prefix=f"{kind}/",
                since_last_modified=cursor.list_since,
                client=landing_bucket.get_client(),
            )
        except (BotoCoreError, ClientError) as exc:
            return _skip(context, f"landing bucket {bucket} unreachable: {_first_line(exc)}")
        taken, next_cursor = take_new(listing, cursor, settings.landing_objects_per_tick)
        if not taken:
            return dg.SensorResult(skip_reason=f"no new objects under {kind}/")
        try:
            tenants = tenant_names(settings.tenants_file)
            wh = warehouse.get(lock_wait_seconds=TICK_LOCK_WAIT_SECONDS)
            init_warehouse(wh)
            outcome = queue_objects(wh, kind, taken, tenants)
        except (TenantsFileError, WarehouseBusyError) as exc:
            # The cursor stays: these objects are taken next time.
            return _skip(context, str(exc))
        for key, reason in outcome.refused:
            context.log.warning(f"{key}: not processed: {reason}")
        for key in outcome.already_done:
            context.log.info(f"{key}: this version already completed; not processed again")
        requests = [
            run_request(kind, batch)
            for batch in batched(outcome.queued, settings.landing_objects_per_run)
        ]
        context.log.info(
            f"{len(taken)} new objects: {len(outcome.queued)} queued in {len(requests)} runs, "
            f"{len(outcome.refused)} refused, {len(outcome.already_done)} already done"
        )
        return dg.SensorResult(
            run_requests=requests,
            cursor=next_cursor.to_json(),
            skip_reason=None if requests else f"{len(taken)} new objects, none to process",
        )

    return sensor


def _skip(context: dg.SensorEvaluationContext, reason: str) -> dg.SensorResult:
    context.log.warning(reason)
    return dg.SensorResult(skip_reason=reason)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


landing_logs_sensor = landing_sensor("logs")
landing_events_sensor = landing_sensor("events")
landing_crawl_sensor = landing_sensor("crawl")
landing_webhooks_sensor = landing_sensor("webhooks")
