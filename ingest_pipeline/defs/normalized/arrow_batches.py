"""Arrow operations of the bulk normalize path (normalize.py): pure functions on one batch.

A raw batch is split by instance and into rows for the bulk path and rows for the record path;
the records of both are put back together in raw order, and the last version of a key within
the batch wins, as on the record path (one upsert statement cannot touch a row twice).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest_pipeline.sources.csv.source import REJECT_REASON_COLUMN
from ingest_pipeline.sources.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN

ROW = "__row"  # a batch row's number in its raw batch


def instance_groups(raw: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Array]]:
    """((tenant, instance), the row numbers of its rows) for each instance in the batch."""
    if raw.num_rows == 0:
        return
    tenants, names = raw.column(TENANT_COLUMN), raw.column(INSTANCE_COLUMN)
    first_tenant, first_name = tenants[0].as_py(), names[0].as_py()
    if (
        pc.all(pc.equal(tenants, first_tenant)).as_py()
        and pc.all(pc.equal(names, first_name)).as_py()
    ):  # one instance (a csv raw table is one instance's): no grouping to do
        yield (first_tenant, first_name), pa.array(range(raw.num_rows), pa.int64())
        return
    numbered = pa.table({"t": tenants, "n": names, ROW: pa.array(range(raw.num_rows), pa.int64())})
    for group in numbered.group_by(["t", "n"]).aggregate([(ROW, "list")]).to_pylist():
        yield (group["t"], group["n"]), pa.array(group[f"{ROW}_list"], pa.int64())


def flagged_by_source(raw: pa.Table) -> pa.Array:
    """Per row: the source found it bad already (a CSV line's reject reason)."""
    if REJECT_REASON_COLUMN not in raw.column_names:
        return pa.array([False] * raw.num_rows, pa.bool_())
    return as_array(pc.is_valid(raw.column(REJECT_REASON_COLUMN)))


def as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array (a table's column is chunked)."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def with_lineage(
    fields: Mapping[str, Any],
    n: int,
    lineage: Mapping[str, Any],
    load_ids: pa.ChunkedArray | pa.Array,
) -> pa.Table:
    """A mapper's columns with the lineage fields every record gets (these win, as on the
    record path); `lineage` values are repeated for the n rows."""
    columns = {name: column for name, column in fields.items() if name not in lineage}
    for name, value in lineage.items():
        kind = pa.timestamp("us", tz="UTC") if isinstance(value, datetime) else pa.string()
        columns[name] = pa.repeat(pa.scalar(value, kind), n)
    columns["raw_load_id"] = load_ids
    return pa.table(columns)


def last_per_key(records: pa.Table, key: Sequence[str], order: str = ROW) -> pa.Table:
    """The records, one per key: the highest `order` (the latest raw row) wins; sorted by
    `order`."""
    if records.num_rows == 0:
        return records
    latest = records.group_by(list(key), use_threads=False).aggregate([(order, "max")])
    if latest.num_rows < records.num_rows:  # a key came more than once
        records = records.filter(pc.is_in(records.column(order), value_set=latest[f"{order}_max"]))
    return records.sort_by(order)


def rows_with_nul(records: pa.Table) -> pa.Array:
    """Per row: a text column holds a NUL (PostgreSQL text cannot store it)."""
    found = pa.array([False] * records.num_rows, pa.bool_())
    for column, kind in zip(records.columns, records.schema.types, strict=True):
        if pa.types.is_string(kind) and column.null_count < len(column):
            nul = pc.fill_null(pc.match_substring(column, "\x00"), False)
            found = pc.or_(found, nul)
    return found


def count_by_instance(records: pa.Table) -> dict[str, int]:
    """{tenant.instance: rows} of normalized records."""
    if records.num_rows == 0:
        return {}
    counts = records.group_by(["tenant_id", "source_instance"]).aggregate([([], "count_all")])
    return {
        f"{row['tenant_id']}.{row['source_instance']}": row["count_all"]
        for row in counts.to_pylist()
    }
