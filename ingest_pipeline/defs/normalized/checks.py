"""Asset checks on the normalized assets (items, feedback, payments), shown beside them in the UI.

The checks run with every materialization of their asset (the `normalize_<entity>` jobs select
them, and they ride along with the automation sensor's runs): never in a raw instance's run, so
one instance's failure is not shown as a check's failure. They open the warehouse, so on DuckDB
they are in the warehouse pool like the writers (a DuckDB file has one opener at a time).
"""

import statistics
from typing import Any

import dagster as dg

from ingest_pipeline.defs.normalized.normalize import ENTITIES, Entity
from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key
from ingest_pipeline.domain.entities import PAYMENTS, Table
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool
from ingest_pipeline.lib.warehouse import Warehouse

# Row-count anomaly: compared with the median of the recent runs that loaded anything.
RECENT_RUNS = 20
MIN_HISTORY = 5
ANOMALY_FACTOR = 10
# Duplicate keys named in the natural-key check's metadata.
DUPLICATE_EXAMPLES = 5
# Keys grouped per pass of the natural-key check on DuckDB: 3M items in one pass held 320 MB.
KEYS_PER_PASS = 1_000_000


# The checks each normalized asset's own runs evaluate. Others on the same assets are recorded
# on a clock of their own (instances_fresh, dbt_source_fresh) and left out of those runs.
CHECK_NAMES = ("natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous")


def with_own_checks(*keys: dg.AssetKey) -> dg.AssetSelection:
    """The assets with the checks their own runs evaluate, and no other check on them."""
    own = [dg.AssetCheckKey(key, name) for key in keys for name in CHECK_NAMES]
    return dg.AssetSelection.assets(*keys).without_checks() | dg.AssetSelection.checks(*own)


def normalized_checks(entity: Entity) -> list[dg.AssetChecksDefinition]:
    return table_checks(entity.name, entity.table)


def table_checks(entity_name: str, table: Table) -> list[dg.AssetChecksDefinition]:
    """The checks of `normalized/<entity_name>`, whose rows live in `table`."""
    key = normalized_asset_key(entity_name)

    @dg.asset_check(
        asset=key,
        name="natural_key_unique",
        description="The natural key is unique.",
        pool=warehouse_pool(),
    )
    def natural_key_unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        duplicates, examples = duplicate_keys(warehouse.get(), table)
        return dg.AssetCheckResult(
            passed=duplicates == 0,
            metadata={
                "duplicate_keys": duplicates,
                "examples": dg.MetadataValue.json(examples),
            },
        )

    @dg.asset_check(
        asset=key,
        name="raw_schema_unchanged",
        description="No raw table gained or lost a column since the previous materialization.",
    )
    def raw_schema_unchanged(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        latest, previous = [*_metadata_values(context, key, "raw_columns", 2), None, None][:2]
        if latest is None or previous is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "no previous run to compare"})
        diff = schema_diff(previous, latest)
        return dg.AssetCheckResult(
            passed=not diff,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"diff": dg.MetadataValue.json(diff)},
        )

    @dg.asset_check(
        asset=key,
        name="row_count_not_anomalous",
        description=f"The rows a run normalized are within {ANOMALY_FACTOR}x of the recent median.",
    )
    def row_count_not_anomalous(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        counts = _metadata_values(context, key, "rows_normalized", RECENT_RUNS + 1)
        if not counts:
            return dg.AssetCheckResult(passed=True, metadata={"note": "no run yet"})
        latest, history = counts[0], [c for c in counts[1:] if c]
        if len(history) < MIN_HISTORY:
            return dg.AssetCheckResult(passed=True, metadata={"note": "too little history"})
        median = statistics.median(history)
        passed = median / ANOMALY_FACTOR <= latest <= median * ANOMALY_FACTOR or latest == 0
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows_normalized": latest, "recent_median": median},
        )

    return [natural_key_unique, raw_schema_unchanged, row_count_not_anomalous]


items_checks = normalized_checks(ENTITIES["items"])
feedback_checks = normalized_checks(ENTITIES["feedback"])
payments_checks = table_checks("payments", PAYMENTS)


def duplicate_keys(wh: Warehouse, table: Table) -> tuple[int, list[dict[str, Any]]]:
    """How many natural keys have more than one row, and the first few (key and row count).

    Counted by grouping the rows, never by trusting a constraint: a table created without its
    key (or by a tool that adds none, as dlt on PostgreSQL) is checked just the same. DuckDB
    groups in this process, so there the keys are grouped in passes of about KEYS_PER_PASS
    (one share of the keys' hashes each): memory bounded whatever the table's size.
    """
    columns = ", ".join(table.key)
    duplicates, found = 0, []
    for share in _key_shares(wh, table):
        groups = (
            f"SELECT {columns}, count(*) AS n FROM {table.qualified} {share} "
            f"GROUP BY {columns} HAVING count(*) > 1"
        )
        # Each pass: its duplicates' number (on every row) and its first few.
        query = f"SELECT count(*) OVER (), * FROM ({groups}) AS d ORDER BY {columns} LIMIT %s"
        rows = wh.fetch_all(query, (DUPLICATE_EXAMPLES,))
        duplicates += rows[0][0] if rows else 0
        found.extend(row[1:] for row in rows)
    found.sort(key=lambda row: row[:-1])
    examples = [
        {"key": dict(zip(table.key, (str(v) for v in row[:-1]), strict=True)), "rows": row[-1]}
        for row in found[:DUPLICATE_EXAMPLES]
    ]
    return duplicates, examples


def _key_shares(wh: Warehouse, table: Table) -> list[str]:
    """WHERE clauses splitting the keys into passes of about KEYS_PER_PASS rows (DuckDB; one
    pass, the whole table, on a server database, which groups on its own side)."""
    if wh.dialect != "duckdb":
        return [""]
    [(rows,)] = wh.fetch_all(f"SELECT count(*) FROM {table.qualified}")
    passes = max(1, -(-rows // KEYS_PER_PASS))
    if passes == 1:
        return [""]
    columns = ", ".join(table.key)
    return [f"WHERE hash({columns}) % {passes} = {n}" for n in range(passes)]


def schema_diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, Any]:
    """New and vanished columns per raw table (new tables are not drift)."""
    diff: dict[str, Any] = {}
    for table, columns in after.items():
        if table not in before:
            continue
        added = sorted(set(columns) - set(before[table]))
        removed = sorted(set(before[table]) - set(columns))
        if added or removed:
            diff[table] = {"added": added, "removed": removed}
    for table in sorted(before.keys() - after.keys()):
        diff[table] = {"table_vanished": True}
    return diff


def _metadata_values(
    context: dg.AssetCheckExecutionContext, key: dg.AssetKey, name: str, limit: int
) -> list[Any]:
    """A metadata entry of the latest materializations, newest first."""
    records = context.instance.fetch_materializations(key, limit=limit).records
    values = []
    for record in records:
        entry = record.asset_materialization.metadata.get(name)
        if entry is not None:
            values.append(entry.value)
    return values
