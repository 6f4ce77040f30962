"""The natural-key check's count and examples, in one pass and in passes over shares of the
keys (DuckDB groups in the process: large tables are checked a share of the keys at a time)."""

import pytest

from ingest_pipeline.defs.normalized import checks
from ingest_pipeline.domain.entities import ITEMS, init_warehouse
from ingest_pipeline.lib.warehouse import Warehouse


def _items_without_their_key(url: str) -> Warehouse:
    """normalized.items without its primary key: 20 items, 3 of them twice, one three times."""
    wh = Warehouse(url)
    init_warehouse(wh)
    for sql in (
        "CREATE TABLE normalized.items_copy AS SELECT * FROM normalized.items",
        "DROP TABLE normalized.items",
        "ALTER TABLE normalized.items_copy RENAME TO items",
    ):
        wh.execute(sql)
    ids = [f"item-{n:02d}" for n in range(20)] + ["item-03", "item-17", "item-11", "item-11"]
    rows = [
        {"tenant_id": "acme", "source_type": "csv", "source_instance": "catalog", "external_id": i}
        for i in ids
    ]
    wh.execute(
        "INSERT INTO normalized.items (tenant_id, source_type, source_instance, external_id) "
        f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(rows))}",
        [value for row in rows for value in row.values()],
    )
    return wh


def test_duplicate_keys_are_the_same_in_one_pass_and_in_many(warehouse_url, monkeypatch):
    wh = _items_without_their_key(warehouse_url)
    key = {"tenant_id": "acme", "source_type": "csv", "source_instance": "catalog"}
    expected = (
        3,
        [
            {"key": {**key, "external_id": "item-03"}, "rows": 2},
            {"key": {**key, "external_id": "item-11"}, "rows": 3},
            {"key": {**key, "external_id": "item-17"}, "rows": 2},
        ],
    )
    assert checks.duplicate_keys(wh, ITEMS) == expected
    monkeypatch.setattr(checks, "KEYS_PER_PASS", 3)  # 8 passes on DuckDB
    assert checks.duplicate_keys(wh, ITEMS) == expected
    monkeypatch.setattr(checks, "DUPLICATE_EXAMPLES", 2)  # the first two of all passes
    assert checks.duplicate_keys(wh, ITEMS) == (3, expected[1][:2])


@pytest.mark.parametrize("passes_of", [1_000_000, 3])
def test_a_table_without_duplicates_passes(duckdb_url, monkeypatch, passes_of):
    wh = Warehouse(duckdb_url)
    init_warehouse(wh)
    monkeypatch.setattr(checks, "KEYS_PER_PASS", passes_of)
    assert checks.duplicate_keys(wh, ITEMS) == (0, [])
