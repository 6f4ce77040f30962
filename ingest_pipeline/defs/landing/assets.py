"""Landed objects processed into the normalized layer: one asset (and one job) per kind of
defs/landing/kinds.py, generated (LANDING_ASSETS, LANDING_JOBS: module-level lists, which
Dagster's defs-folder loading collects like single definitions).

A landing sensor launches a run of `land_<kind>` for each batch of new objects, with the batch
in the run config. Materialized by hand from the UI with no objects configured, the asset takes
the uploads of its kind still Queued (and, with `retry_failed`, the Failed ones) instead.
Every landing step writes the warehouse, so it is in the warehouse pool (`warehouse_pool()`).
Crawl batches and webhook deliveries write tables of the normalized entities (items, feedback,
payments): those assets name the landing assets as deps, so lineage shows where rows come from.
"""

import contextlib
import dataclasses
import typing
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
from pydantic import create_model

from ingest_pipeline.defs.landing.kinds import LANDING_KINDS, LandingKind, landing_kind
from ingest_pipeline.defs.landing.loaders import LandedFileError, LandingWriter, LoadCounts
from ingest_pipeline.defs.landing.resources import LandingBucketResource
from ingest_pipeline.domain.entities import UPLOADS, init_warehouse
from ingest_pipeline.domain.touched_days import touched_days, touched_days_metadata
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

# The landing assets' keys by kind, for the assets that name them as deps (normalized/*).
ASSET_KEYS = {kind.name: kind.asset_key for kind in LANDING_KINDS}
ALL_COMPLETED = "all_objects_completed"


def _config_fields(cls: type) -> dict[str, Any]:
    """A dataclass's fields as pydantic field definitions (type, default or required)."""
    hints = typing.get_type_hints(cls)
    return {
        field.name: (
            hints[field.name],
            ... if field.default is dataclasses.MISSING else field.default,
        )
        for field in dataclasses.fields(cls)
    }


# One object of a run's batch: LandedObject's fields, declared there once (what a sensor sends
# and what a run reads back are the same shape).
LandedObjectConfig = create_model(
    "LandedObjectConfig", __base__=dg.Config, **_config_fields(LandedObject)
)


class LandingBatchConfig(dg.Config):
    objects: list[LandedObjectConfig] = []
    retry_failed: bool = False  # with no objects given: also take this kind's Failed uploads


def landing_asset(kind: LandingKind) -> dg.AssetsDefinition:
    key = kind.asset_key

    @dg.asset(
        key=key,
        group_name="landing",
        kinds={"s3", "python"},
        description=kind.description,
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
        started = datetime.now(UTC)
        objects = [LandedObject(**o.model_dump()) for o in config.objects] or pending_uploads(
            wh, kind.name, config.retry_failed
        )
        results = process_objects(
            wh,
            landing_bucket.get_client(),
            landing_bucket.get_bucket(),
            kind.name,
            objects,
            context.run_id,
        )
        failed = {r.upload_id: r.reason for r in results if r.status == "Failed"}
        retried = {r.upload_id: r.reason for r in results if r.status == "Queued"}
        # The object's key beside its upload id: the run's log says which file it was.
        keys = {o.upload_id: o.key for o in objects}
        for upload_id, reason in failed.items():
            context.log.warning(f"upload {upload_id} ({keys.get(upload_id)}) Failed: {reason}")
        for upload_id, reason in retried.items():
            context.log.warning(
                f"upload {upload_id} ({keys.get(upload_id)}) Queued again: {reason}"
            )
        done = len(objects) - len(failed) - len(retried)
        context.log.info(f"{done} of {len(objects)} objects completed")
        loaded = sum(r.rows_loaded for r in results)
        rejected = sum(r.rows_rejected for r in results)
        days = touched_days(wh, kind.entities, started, wrote_rows=loaded + rejected > 0)
        return dg.MaterializeResult(
            metadata={
                "objects": len(objects),
                "objects_failed": len(failed),
                "objects_retried": len(retried),
                "rows_loaded": loaded,
                "rows_rejected": rejected,
                "failed": dg.MetadataValue.json(failed),
                **touched_days_metadata(days),
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
    declared = landing_kind(kind)
    writer = declared.writer(wh)
    attempts = mark_processing(wh, [o.upload_id for o in objects], run_id)
    results: list[UploadResult] = []
    try:
        for obj in objects:
            results.append(_process_one(declared, writer, client, bucket, obj, attempts))
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
    kind: LandingKind,
    writer: LandingWriter,
    client: Any,
    bucket: str,
    obj: LandedObject,
    attempts: dict[str, int],
) -> UploadResult:
    try:
        writer.begin(obj)
        # IfMatch: exactly the version the sensor queued; a newer one has its own run.
        body = client.get_object(Bucket=bucket, Key=obj.key, IfMatch=obj.etag)["Body"]
        with contextlib.closing(body):
            kind.read(writer, obj, body)
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


def land_job(kind: LandingKind) -> Any:  # define_asset_job's type is not public
    return dg.define_asset_job(
        kind.job_name,
        # The asset and its own check; not those recorded on a clock of their own.
        selection=dg.AssetSelection.assets(kind.asset_key).without_checks()
        | dg.AssetSelection.checks(dg.AssetCheckKey(kind.asset_key, ALL_COMPLETED)),
        # Dagster re-executes runs whose process died (dagster.yaml run_retries), but a landing
        # run's uploads are taken again by its sensor instead, each within its own attempts.
        tags={**max_runtime_tags(LOAD_MAX_RUNTIME_SECONDS), "dagster/max_retries": "0"},
    )


LANDING_ASSETS = [landing_asset(kind) for kind in LANDING_KINDS]
LANDING_JOBS = [land_job(kind) for kind in LANDING_KINDS]
