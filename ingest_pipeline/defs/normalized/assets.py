"""`normalized/<entity>`: every source of an entity in one validated, keyed table.

Unpartitioned and idempotent: a run normalizes every raw dlt load not yet normalized, whichever
instance it came from, so it never depends on one instance's run having succeeded. It runs on its
own (`normalize_<entity>`, or the automation sensor after any parent updated), never inside an
instance's raw run. Its parents are the raw assets of its source types and the landing assets
that write the same table (Dagster allows one producer per key, so those are deps).

Concurrent runs neither redo nor break each other: the step holds a pool (`normalize_pool`: the
DuckDB writer's, or `normalize_<entity>` on PostgreSQL; limit 1), so a second run waits and finds
the loads taken; and a raw load holds one instance's rows (one dlt pipeline per instance), so a
load that cannot be normalized is quarantined alone (normalize.py) and fails no other tenant.
"""

from datetime import UTC, datetime

import dagster as dg

from ingest_pipeline.defs.landing.kinds import landing_parents
from ingest_pipeline.defs.normalized.automation import normalize_condition
from ingest_pipeline.defs.normalized.metadata import normalized_metadata
from ingest_pipeline.defs.normalized.normalize import ENTITIES, Entity, normalize_source_type
from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key, raw_asset_key
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.tenants import load_source_instances
from ingest_pipeline.lib.resources import WarehouseResource, normalize_pool
from ingest_pipeline.lib.source_types import types_of_entity
from ingest_pipeline.settings import get_settings


class NormalizeConfig(dg.Config):
    replay: bool = False  # rebuild from every raw load, not only the ones not yet normalized


def entity_parents(entity_name: str) -> list[dg.AssetKey]:
    """The raw assets of the entity's source types, then the landing assets writing its table."""
    raw = [raw_asset_key(t.name) for t in types_of_entity(entity_name)]
    return raw + landing_parents(entity_name)


def normalized_asset(entity: Entity, description: str) -> dg.AssetsDefinition:
    source_types = types_of_entity(entity.name)

    @dg.asset(
        key=normalized_asset_key(entity.name),
        deps=entity_parents(entity.name),
        group_name="normalized",
        kinds={"python"},
        description=description,
        automation_condition=normalize_condition(),
        pool=normalize_pool(entity.name),
    )
    def normalized(
        context: dg.AssetExecutionContext, config: NormalizeConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        init_warehouse(wh)
        started = datetime.now(UTC)
        instances = load_source_instances(get_settings().tenants_file)
        per_instance: dict[str, dict[str, int]] = {}
        quarantined: list[dict[str, object]] = []
        for source_type in source_types:
            stats = normalize_source_type(
                wh,
                entity,
                source_type.name,
                source_type.mapper,
                [i for i in instances if i.type == source_type.name],
                config.replay,
                source_type.batch_mapper,
            )
            for key in stats.normalized.keys() | stats.rejected.keys():
                per_instance[f"{source_type.name}:{key}"] = {
                    "normalized": stats.normalized[key],
                    "rejected": stats.rejected[key],
                }
            quarantined += [vars(q) for q in stats.quarantined]
            context.log.info(f"{source_type.name}: {stats.loads} raw loads normalized")
        metadata = normalized_metadata(
            wh,
            entity.table,
            [t.name for t in source_types],
            per_instance,
            "ingested_at DESC, external_id",
            started,
        )
        # Raw loads that could not be normalized at all (a replay retries them): shown per run.
        metadata["quarantined_loads"] = dg.MetadataValue.json(quarantined)
        return dg.MaterializeResult(metadata=metadata)

    return normalized


normalized_items = normalized_asset(
    ENTITIES["items"],
    "Items from every item source, validated, unique on (tenant_id, source_type, "
    "source_instance, external_id); rejects go to normalized.rejected_records.",
)
normalized_feedback = normalized_asset(
    ENTITIES["feedback"],
    "Customer feedback (reviews, tweets, posts, conversations) from every feedback platform, "
    "unique on (tenant_id, source_type, source_instance, external_id).",
)
