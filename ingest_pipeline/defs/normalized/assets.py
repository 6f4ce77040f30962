"""`normalized/<entity>`: every source of an entity in one validated, keyed table."""

import dagster as dg

from ingest_pipeline.defs.normalized.mappers import MAPPERS
from ingest_pipeline.defs.normalized.metadata import normalized_metadata
from ingest_pipeline.defs.normalized.normalize import ENTITIES, Entity, normalize_source_type
from ingest_pipeline.lib.normalized_tables import init_warehouse
from ingest_pipeline.lib.raw_assets import normalized_asset_key, raw_asset_key
from ingest_pipeline.lib.resources import WarehouseResource
from ingest_pipeline.lib.source_types import types_of_entity
from ingest_pipeline.lib.tenants import load_source_instances
from ingest_pipeline.settings import get_settings


class NormalizeConfig(dg.Config):
    replay: bool = False  # rebuild from every raw load, not only the ones not yet normalized


def normalized_asset(entity: Entity, description: str) -> dg.AssetsDefinition:
    source_types = types_of_entity(entity.name)

    @dg.asset(
        key=normalized_asset_key(entity.name),
        deps=[raw_asset_key(t.name) for t in source_types],
        group_name="normalized",
        kinds={"python"},
        description=description,
    )
    def normalized(
        context: dg.AssetExecutionContext, config: NormalizeConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        init_warehouse(wh)
        instances = load_source_instances(get_settings().tenants_file)
        per_instance: dict[str, dict[str, int]] = {}
        for source_type in source_types:
            stats = normalize_source_type(
                wh,
                entity,
                source_type.name,
                MAPPERS[source_type.name],
                [i for i in instances if i.type == source_type.name],
                config.replay,
            )
            for key in stats.normalized.keys() | stats.rejected.keys():
                per_instance[f"{source_type.name}:{key}"] = {
                    "normalized": stats.normalized[key],
                    "rejected": stats.rejected[key],
                }
            context.log.info(f"{source_type.name}: {stats.loads} raw loads normalized")
        return dg.MaterializeResult(
            metadata=normalized_metadata(
                wh,
                entity.table,
                [t.name for t in source_types],
                per_instance,
                "ingested_at DESC, external_id",
            )
        )

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
