"""`normalized/items`: every item-like source in one validated, keyed table."""

import dagster as dg

from ingest_pipeline.defs.normalized.mappers import ITEM_MAPPERS
from ingest_pipeline.defs.normalized.normalize import normalize_items
from ingest_pipeline.lib.dlt_pipelines import raw_dataset
from ingest_pipeline.lib.normalized_tables import ITEMS, REJECTED_RECORDS, init_warehouse
from ingest_pipeline.lib.raw_assets import NORMALIZED_ITEMS_KEY, raw_asset_key
from ingest_pipeline.lib.resources import WarehouseResource
from ingest_pipeline.lib.tenants import load_source_instances
from ingest_pipeline.settings import get_settings

ITEM_RAW_ASSETS = {"rest_api": "records", "csv": "rows", "rss": "entries"}
PREVIEW_ROWS = 10


class NormalizeConfig(dg.Config):
    replay: bool = False  # rebuild from every raw load, not only the ones not yet normalized


@dg.asset(
    key=NORMALIZED_ITEMS_KEY,
    deps=[raw_asset_key(t, r) for t, r in ITEM_RAW_ASSETS.items()],
    group_name="normalized",
    kinds={"python"},
    description="Items from every item source, validated, unique on "
    "(tenant_id, source_type, source_instance, external_id); rejects go to "
    "normalized.rejected_records.",
)
def normalized_items(
    context: dg.AssetExecutionContext, config: NormalizeConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    init_warehouse(wh)
    instances = load_source_instances(get_settings().tenants_file)
    per_instance: dict[str, dict[str, int]] = {}
    for source_type, mapper in ITEM_MAPPERS.items():
        stats = normalize_items(
            wh, source_type, mapper, [i for i in instances if i.type == source_type], config.replay
        )
        for key in stats.normalized.keys() | stats.rejected.keys():
            per_instance[f"{source_type}:{key}"] = {
                "normalized": stats.normalized[key],
                "rejected": stats.rejected[key],
            }
        context.log.info(f"{source_type}: {stats.loads} raw loads normalized")
    total = wh.fetch_all(f"SELECT count(*) FROM {ITEMS.qualified}")[0][0]
    rejected_total = wh.fetch_all(f"SELECT count(*) FROM {REJECTED_RECORDS.qualified}")[0][0]
    return dg.MaterializeResult(
        metadata={
            "rows_normalized": dg.MetadataValue.int(
                sum(v["normalized"] for v in per_instance.values())
            ),
            "rows_rejected": dg.MetadataValue.int(
                sum(v["rejected"] for v in per_instance.values())
            ),
            "per_instance": dg.MetadataValue.json(per_instance),
            "dagster/row_count": dg.MetadataValue.int(total),
            "rejected_records_total": dg.MetadataValue.int(rejected_total),
            "raw_columns": dg.MetadataValue.json(_raw_columns(wh)),
            "preview": dg.MetadataValue.md(_preview(wh)),
        }
    )


def _raw_columns(wh) -> dict[str, list[str]]:
    """Column lists of every raw table: what the schema-drift check compares run to run."""
    columns: dict[str, list[str]] = {}
    for source_type in ITEM_RAW_ASSETS:
        schema = raw_dataset(source_type)
        for table, names in wh.table_columns(schema).items():
            if not table.startswith("_dlt"):
                columns[f"{schema}.{table}"] = names
    return columns


def _preview(wh) -> str:
    columns = [
        "tenant_id",
        "source_type",
        "source_instance",
        "external_id",
        "title",
        "published_at",
    ]
    rows = wh.fetch_all(
        f"SELECT {', '.join(columns)} FROM {ITEMS.qualified} "
        f"ORDER BY ingested_at DESC, external_id LIMIT {PREVIEW_ROWS}"
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join("" if v is None else str(v)[:60] for v in row) + " |" for row in rows
    ]
    return "\n".join(lines)
