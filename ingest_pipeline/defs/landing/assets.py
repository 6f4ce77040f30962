"""Landed objects processed into the normalized layer: one asset (and one job) per kind.

A landing sensor launches a run of `land_<kind>` for each batch of new objects, with the batch
in the run config. Materialized by hand from the UI with no objects configured, the asset takes
the uploads of its kind still Queued (and, with `retry_failed`, the Failed ones) instead.
Every landing step writes the warehouse, so it is in the warehouse pool (`warehouse_pool()`).
Crawl batches and webhook deliveries write tables of the normalized entities (items, feedback,
payments): those assets name the landing assets as deps, so lineage shows where rows come from.
"""

import contextlib
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as StoreConnectionError,
)

from ingest_pipeline.defs.landing.loaders import LOADERS, LandedFileError, LoadCounts
from ingest_pipeline.defs.landing.resources import LandingBucketResource
from ingest_pipeline.domain.entities import UPLOADS, init_warehouse
from ingest_pipeline.domain.uploads import (
    LandedObject,
    UploadResult,
    mark_processing,
    record_results,
    retry_or_fail,
)
from ingest_pipeline.lib.resources import (
    LOAD_MAX_RUNTIME_SECONDS,
    WarehouseResource,
    max_runtime_tags,
    warehouse_pool,
)
from ingest_pipeline.lib.warehouse import Warehouse

ASSET_KEYS = {
    "logs": dg.AssetKey(["normalized", "log_records"]),
    "events": dg.AssetKey(["normalized", "events"]),
    # Crawl batches land in normalized.items, which normalized/items (the pulled item sources)
    # also writes; one table, two assets that each own their rows (source_type 'crawl').
    "crawl": dg.AssetKey(["landing", "crawl"]),
    # Deliveries land in two tables (feedback, payments), each shared with a pull source.
    "webhooks": dg.AssetKey(["landing", "webhooks"]),
}
DESCRIPTIONS = {
    "logs": "Uploaded log files (logs/<tenant>/...), one row per line keyed (object key, line "
    "number); lines that do not parse go to normalized.rejected_records.",
    "events": "App event batches (events/<tenant>/..., NDJSON or CSV), unique on "
    "(tenant_id, event_id): re-sent and overlapping batches add nothing.",
    "crawl": "Partner crawl batches (crawl/<tenant>/<partner>/..., JSON array or NDJSON) "
    "upserted into normalized.items on (tenant, 'crawl', partner, externalId).",
    "webhooks": "Webhook deliveries the intake verified and landed (webhooks/<provider>/<tenant>/"
    "...): Intercom conversations into normalized.feedback on the Intercom pull source's key, "
    "Stripe payment events into normalized.payments on the PaymentIntent id.",
}
ALL_COMPLETED = "all_objects_completed"


class LandedObjectConfig(dg.Config):
    upload_id: str
    tenant_id: str
    kind: str
    key: str
    etag: str
    size_bytes: int
    channel: str | None = None  # the crawl partner, or the webhook provider


class LandingBatchConfig(dg.Config):
    objects: list[LandedObjectConfig] = []
    retry_failed: bool = False  # with no objects given: also take this kind's Failed uploads


def job_name(kind: str) -> str:
    return f"land_{kind}"


def landing_asset(kind: str) -> dg.AssetsDefinition:
    key = ASSET_KEYS[kind]

    @dg.asset(
        key=key,
        group_name="landing",
        kinds={"s3", "python"},
        description=DESCRIPTIONS[kind],
        pool=warehouse_pool(),
        check_specs=[
            dg.AssetCheckSpec(
                ALL_COMPLETED,
                asset=key,
                description="Every object of the run completed (Failed ones, and ones Queued "
                "again after a transient fault, name their reason in normalized.uploads).",
            )
        ],
    )
    def landed(
        context: dg.AssetExecutionContext,
        config: LandingBatchConfig,
        warehouse: WarehouseResource,
        landing_bucket: LandingBucketResource,
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        init_warehouse(wh)
        objects = [LandedObject(**o.model_dump()) for o in config.objects] or pending_uploads(
            wh, kind, config.retry_failed
        )
        results = process_objects(
            wh,
            landing_bucket.get_client(),
            landing_bucket.get_bucket(),
            kind,
            objects,
            context.run_id,
        )
        failed = {r.upload_id: r.reason for r in results if r.status == "Failed"}
        retried = {r.upload_id: r.reason for r in results if r.status == "Queued"}
        for upload_id, reason in failed.items():
            context.log.warning(f"upload {upload_id} Failed: {reason}")
        for upload_id, reason in retried.items():
            context.log.warning(f"upload {upload_id} Queued again: {reason}")
        done = len(objects) - len(failed) - len(retried)
        context.log.info(f"{done} of {len(objects)} objects completed")
        return dg.MaterializeResult(
            metadata={
                "objects": len(objects),
                "objects_failed": len(failed),
                "objects_retried": len(retried),
                "rows_loaded": sum(r.rows_loaded for r in results),
                "rows_rejected": sum(r.rows_rejected for r in results),
                "failed": dg.MetadataValue.json(failed),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=ALL_COMPLETED,
                    passed=not failed and not retried,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "failed": dg.MetadataValue.json(failed),
                        "retried": dg.MetadataValue.json(retried),
                    },
                )
            ],
        )

    return landed


def process_objects(
    wh: Warehouse,
    client: Any,
    bucket: str,
    kind: str,
    objects: list[LandedObject],
    run_id: str | None = None,
) -> list[UploadResult]:
    """Processing → Completed with counts, or Failed with the reason, per object; one poison
    object fails alone. An object the store could not serve for a transient reason goes back to
    Queued for a later run (`retry_or_fail`). Only a warehouse fault escapes: the run fails, its
    uploads go back to Queued (or Failed after their last attempt) with that reason, and a
    re-run is safe (every write is an idempotent upsert)."""
    loader = LOADERS[kind]
    writer = loader.writer(wh)
    attempts = mark_processing(wh, [o.upload_id for o in objects], run_id)
    results: list[UploadResult] = []
    try:
        for obj in objects:
            results.append(_process_one(loader, writer, client, bucket, obj, attempts))
        writer.flush()  # rows are stored before any upload is recorded Completed
    except Exception as exc:
        now, reason = datetime.now(UTC), f"{type(exc).__name__}: {exc}"
        record_results(
            wh,
            [
                retry_or_fail(o.upload_id, reason, attempts.get(o.upload_id, 1), now)
                for o in objects
            ],
        )
        raise
    record_results(wh, results)
    return results


def _process_one(
    loader: Any, writer: Any, client: Any, bucket: str, obj: LandedObject, attempts: dict[str, int]
) -> UploadResult:
    writer.begin(obj)
    try:
        # IfMatch: exactly the version the sensor queued; a newer one has its own run.
        body = client.get_object(Bucket=bucket, Key=obj.key, IfMatch=obj.etag)["Body"]
        with contextlib.closing(body):
            loader.read(writer, obj, body)
    except LandedFileError as exc:
        return _result(obj, "Failed", str(exc), exc.counts)
    except (ClientError, BotoCoreError) as exc:
        if is_transient(exc):
            counts = (writer.counts.loaded, writer.counts.rejected)
            now = datetime.now(UTC)
            return retry_or_fail(
                obj.upload_id, _store_error(exc), attempts.get(obj.upload_id, 1), now, counts
            )
        return _result(obj, "Failed", _store_error(exc), LoadCounts())
    return _result(obj, "Completed", None, writer.counts)


def _result(obj: LandedObject, status: str, reason: str | None, counts: LoadCounts) -> UploadResult:
    return UploadResult(
        obj.upload_id, status, counts.loaded, counts.rejected, reason, datetime.now(UTC)
    )


# What botocore's standard retry mode itself retries (throttling, 5xx, connection and timeout
# errors): still failing after its backoff, the object is tried again by a later run.
_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
}


def is_transient(exc: Exception) -> bool:
    """A fault of the store or the network, not of the object."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in _TRANSIENT_CODES or int(status) >= 500
    return isinstance(exc, (HTTPClientError, StoreConnectionError, ResponseStreamingError))


def _store_error(exc: Exception) -> str:
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    if code in ("PreconditionFailed", "412"):
        return "the object was replaced after it was queued (the new version is queued apart)"
    if code in ("NoSuchKey", "404"):
        return "the object was deleted before it was processed"
    return f"cannot read the object: {exc}"


def pending_uploads(wh: Warehouse, kind: str, retry_failed: bool) -> list[LandedObject]:
    # Failed uploads that never started were refused by the sensor (empty, bad key): not retried.
    failed = " OR (status = 'Failed' AND started_at IS NOT NULL)" if retry_failed else ""
    rows = wh.fetch_all(
        f"SELECT upload_id, tenant_id, object_key, etag, size_bytes FROM {UPLOADS.qualified} "
        f"WHERE kind = %s AND (status = 'Queued'{failed}) AND etag IS NOT NULL "
        "ORDER BY queued_at, object_key",
        (kind,),
    )
    return [
        LandedObject.from_key(upload_id, tenant, kind, key, etag, size or 0)
        for upload_id, tenant, key, etag, size in rows
    ]


landed_logs = landing_asset("logs")
landed_events = landing_asset("events")
landed_crawl = landing_asset("crawl")
landed_webhooks = landing_asset("webhooks")


def land_job(kind: str) -> Any:
    return dg.define_asset_job(
        job_name(kind),
        selection=[ASSET_KEYS[kind]],
        executor_def=dg.in_process_executor,
        # Dagster re-executes runs whose process died (dagster.yaml run_retries), but a landing
        # run's uploads are taken again by its sensor instead, each within its own attempts.
        tags={**max_runtime_tags(LOAD_MAX_RUNTIME_SECONDS), "dagster/max_retries": "0"},
    )


land_logs_job = land_job("logs")
land_events_job = land_job("events")
land_crawl_job = land_job("crawl")
land_webhooks_job = land_job("webhooks")
