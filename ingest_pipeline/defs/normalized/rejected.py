"""`normalized/rejected_records`: every row a normalizing step refused, with its reason.

The table is written by the steps that reject (the normalized assets and the landing assets);
this asset owns none of its rows. Materializing it reads the table and records what the UI and
alerts need: the total (`dagster/row_count`) and the counts per source type and per
`source_type:source_instance`. It runs after any of its writers (the same automation rule as the
normalized assets, and inside each `normalize_<entity>` job), so its history follows the rejects.
"""

from collections import Counter

import dagster as dg

from ingest_pipeline.defs.landing.assets import ASSET_KEYS as LANDING_KEYS
from ingest_pipeline.defs.normalized.automation import normalize_condition
from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key
from ingest_pipeline.domain.entities import REJECTED_RECORDS, init_warehouse
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool
from ingest_pipeline.lib.warehouse import Warehouse

REJECTS_KEY = normalized_asset_key("rejected_records")
# Every asset whose steps write rejects: the normalized entities and each landing kind.
REJECT_WRITERS = [
    *(normalized_asset_key(e) for e in ("items", "feedback", "payments")),
    *LANDING_KEYS.values(),
]


def reject_counts(wh: Warehouse) -> dict[str, dict[str, int]]:
    """Rejected rows per source type and per `source_type:source_instance`."""
    rows = wh.fetch_all(
        f"SELECT source_type, source_instance, count(*) FROM {REJECTED_RECORDS.qualified} "
        "GROUP BY source_type, source_instance ORDER BY source_type, source_instance"
    )
    per_type: Counter[str] = Counter()
    per_instance: dict[str, int] = {}
    for source_type, source_instance, count in rows:
        per_type[source_type] += int(count)
        per_instance[f"{source_type}:{source_instance}"] = int(count)
    return {"per_source_type": dict(per_type), "per_source_instance": per_instance}


@dg.asset(
    key=REJECTS_KEY,
    deps=REJECT_WRITERS,
    group_name="normalized",
    kinds={"python"},
    description="Rows that failed validation anywhere in the normalized layer (pulled sources "
    "and landed objects), with the source, the reason and the raw payload; unique on (tenant_id, "
    "source_type, source_instance, record_ref). Materializing it records the counts.",
    automation_condition=normalize_condition(),
    pool=warehouse_pool(),
)
def rejected_records(warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    init_warehouse(wh)  # the table exists before the first reject
    counts = reject_counts(wh)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(sum(counts["per_source_type"].values())),
            "per_source_type": dg.MetadataValue.json(counts["per_source_type"]),
            "per_source_instance": dg.MetadataValue.json(counts["per_source_instance"]),
        }
    )
