"""The raw layer of a source type: one `@dlt_assets` partitioned by source instance.

Every source type has the same shape: a dynamic partition per `tenant.instance` (kept in step
with the tenants file), a dlt pipeline per instance, and a job `ingest_<type>` that loads one
instance's raw data, and only that: normalizing is the unpartitioned `normalized/<entity>`
asset's own run (`normalize_<entity>`, or the automation sensor), so a failing instance fails its
own partition's run and nothing else, never the shared normalized asset or its checks.
Every run of a partition carries the instance's run tags (`instance_run_tags`: tenant, source
instance), however it was launched: the job's partitioned config adds them. A step that fails
on a transient fault is run again by the job's RetryPolicy (lib/step_retries.py); any other
fault fails it at once.

Raw steps write the warehouse, so they are in the warehouse pool (`warehouse_pool()`), and a
DuckDB file held for a moment by a process outside the pool is waited for, not a failure.
"""

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ingest_pipeline.domain.entities import FEEDBACK, ITEMS
from ingest_pipeline.domain.tenants import (
    SourceInstance,
    TenantsFileError,
    find_instance,
    instance_run_tags,
)
from ingest_pipeline.lib.resources import (
    LOAD_MAX_RUNTIME_SECONDS,
    max_runtime_tags,
    warehouse_pool,
)
from ingest_pipeline.lib.source_types import SOURCE_TYPES, SourceType
from ingest_pipeline.lib.step_retries import ingest_retry_policy, is_transient
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings
from ingest_pipeline.sources.dlt_pipelines import instance_pipeline, spec_pipeline

# The entities whose pulled sources may name personal fields (domain/privacy.py).
PRIVATE_ENTITIES = {"items": ITEMS, "feedback": FEEDBACK}


def raw_asset_key(source_type: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source_type, SOURCE_TYPES[source_type].raw_resource])


def normalized_asset_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["normalized", entity])


def normalize_job_name(entity: str) -> str:
    """The job that materializes `normalized/<entity>` (and its checks) on its own."""
    return f"normalize_{entity}"


def instance_partitions(source_type: str) -> dg.DynamicPartitionsDefinition:
    """Partition keys are `tenant.instance`, added and removed as the tenants file changes."""
    return dg.DynamicPartitionsDefinition(name=SOURCE_TYPES[source_type].partitions_name)


class RawTranslator(DagsterDltTranslator):
    """Every resource of a source type lands under one key `raw/<type>/<resource>`.

    Instances choose their own resource names (a REST API's endpoints), but the asset graph
    cannot change with the tenants file, so they all report to the type's one raw asset.
    """

    def __init__(self, source_type: str, description: str):
        super().__init__()
        self.source_type = source_type
        self.description = description

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(
                key=raw_asset_key(self.source_type),
                group_name=self.source_type,
                description=self.description,
                deps=[],
            )
            .merge_attributes(kinds={"dlt"})
        )


def build_raw_assets(kind: SourceType) -> dg.AssetsDefinition:
    """The raw asset of a source type (its declaration's dlt source and description)."""
    source_type, build_source = kind.name, kind.declared.raw.dlt_source
    partitions = instance_partitions(source_type)
    translator = RawTranslator(source_type, kind.declared.raw.description)

    @dlt_assets(
        dlt_source=build_source(),
        dlt_pipeline=spec_pipeline(source_type),
        name=f"raw_{source_type}",
        dagster_dlt_translator=translator,
        partitions_def=partitions,
        pool=warehouse_pool(),
    )
    def raw_assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        settings = get_settings()
        try:
            instance = find_instance(settings.tenants_file, source_type, context.partition_key)
        except TenantsFileError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        check_privacy_fields(instance, kind.entity)
        pipeline = instance_pipeline(instance, settings, context.log)

        def load() -> list[Any]:
            return list(
                dlt.run(
                    context=context,
                    dlt_source=build_source(instance),
                    dlt_pipeline=pipeline,
                    dagster_dlt_translator=translator,
                )
            )

        try:
            results = load_waiting_for_the_warehouse(settings, load)
        except Exception as exc:
            # dlt wraps the source's own error; name the instance and the root cause only.
            raise dg.Failure(
                description=f"{source_type} source {instance.partition_key} failed: "
                f"{_root_cause(exc)}",
                metadata={"tenant": instance.tenant, "source_instance": instance.name},
                # Only a transient fault is worth the job's RetryPolicy (lib/step_retries.py).
                allow_retries=is_transient(exc),
            ) from exc
        yield _one_result(results, raw_asset_key(source_type), instance, pipeline)

    return raw_assets


def check_privacy_fields(instance: SourceInstance, entity: str) -> None:
    """Fail the instance's run, naming it, if its `pii`/`pii_drop` list a field its entity does
    not have: a typo never loads a personal field in clear."""
    if instance.privacy is None:
        return
    table = PRIVATE_ENTITIES.get(entity)
    try:
        if table is None:
            raise ValueError(f"normalized.{entity} has no personal fields to pseudonymize")
        instance.privacy.check_fields(entity, table.text_columns)
    except ValueError as exc:
        raise dg.Failure(
            description=f"{instance.type} source {instance.partition_key}: {exc}",
            metadata={"tenant": instance.tenant, "source_instance": instance.name},
            allow_retries=False,
        ) from None


def load_waiting_for_the_warehouse(settings: Any, load: Callable[[], list[Any]]) -> list[Any]:
    """dlt opens the DuckDB file itself and fails at once if a process outside the pool (a
    sensor tick, the intake, the CLI) holds it for a moment: load again, waiting like every
    other writer. A new run resumes dlt's pending packages, so nothing loads twice."""
    return Warehouse(settings.resolved_warehouse_url).sql_dialect.waiting_for_the_file(load)


def _one_result(
    results: list[Any], key: dg.AssetKey, instance: Any, pipeline: Any
) -> dg.MaterializeResult:
    """Fold dlt's one-result-per-resource into the one asset the type has."""
    row_counts = {
        table: count
        for table, count in pipeline.last_trace.last_normalize_info.row_counts.items()
        if not table.startswith("_dlt")
    }
    metadata: dict[str, Any] = {
        "tenant": instance.tenant,
        "source_instance": instance.name,
        "rows_loaded": dg.MetadataValue.int(sum(row_counts.values())),
        "rows_per_table": dg.MetadataValue.json(row_counts),
    }
    if len(results) == 1:
        metadata = {**results[0].metadata, **metadata}
    return dg.MaterializeResult(asset_key=key, metadata=metadata)


def _root_cause(exc: BaseException) -> str:
    """The first error below dlt's wrappers: the source's own words (file, feed, HTTP status)."""
    while type(exc).__module__.startswith("dlt.") and exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


def ingest_job(kind: SourceType, raw_assets: dg.AssetsDefinition) -> Any:
    """Load one instance's raw data, one run per partition (instance); nothing shared."""
    source_type = kind.name
    partitions = instance_partitions(source_type)
    return dg.define_asset_job(
        name=kind.job_name,
        # Without the freshness check of every instance (instance_freshness_sensor records it).
        selection=dg.AssetSelection.assets(raw_assets).without_checks(),
        partitions_def=partitions,
        config=instance_tagged_config(source_type, partitions),
        op_retry_policy=ingest_retry_policy(),
        tags=max_runtime_tags(LOAD_MAX_RUNTIME_SECONDS),
        description=f"Load one {source_type} source instance (a partition) into raw; "
        f"{normalized_asset_key(kind.entity).to_user_string()} follows on its own.",
    )


def instance_tagged_config(
    source_type: str, partitions: dg.DynamicPartitionsDefinition
) -> dg.PartitionedConfig:
    """No run config, and the instance's run tags for each partition: Dagster adds them to
    every run of a partition however it is launched (schedule, UI, backfill, CLI)."""
    return dg.PartitionedConfig(
        partitions_def=partitions,
        run_config_for_partition_key_fn=lambda _key: {},
        tags_for_partition_key_fn=partial(instance_run_tags, source_type),
    )
