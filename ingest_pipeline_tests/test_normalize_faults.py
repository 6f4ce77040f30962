"""Faults at write time stay with their records or their load, never with the step: a value the
database refuses is a reject with its reason, a load that cannot be normalized is quarantined and
blocks nothing, and a value dlt put in a variant column is validated, not read as a null.

Real DuckDB and PostgreSQL, real Dagster runs; each bad instance has a good one beside it."""

import random
import string
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest

from ingest_pipeline.defs.normalized.normalize import reject_row, upsert_rejects, write_records
from ingest_pipeline.domain.entities import ITEMS, REJECTED_RECORDS, init_warehouse
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.catalog_api import CatalogApi, sample_products
from ingest_pipeline.sandbox.instances import ITEM_CSV_MAPPING
from ingest_pipeline_tests.conftest import API_TOKEN, csv_instance, rest_api_instance
from ingest_pipeline_tests.test_items_sources import write_csv

GOOD_CSV = "sku,name,link,updated\nG1,Good one,https://x.example/g1,2026-01-01\n"
# The title read from JSON text in a CSV cell: the raw layer holds the escape, which the
# mapper's JSON reading turns into the character itself.
META_MAPPING = {**ITEM_CSV_MAPPING, "title": "meta.name"}


def meta_csv(*names: str) -> str:
    """A CSV whose `meta` column holds JSON text `{"name": <name>}` (names as JSON escapes)."""
    lines = ["sku,meta,link,updated"]
    for n, name in enumerate(names, start=1):
        meta = '{""name"": ""' + name + '""}'
        lines.append(f'{n},"{meta}",https://x.example/{n},2026-01-0{n}')
    return "\n".join(lines) + "\n"


def bad_and_good(env, bad_csv: str, **bad_options) -> None:
    """Tenant acme's `bad` instance first (its normalize runs first), globex's `good` after."""
    write_csv(env.tmp_path / "bad", "items.csv", bad_csv)
    write_csv(env.tmp_path / "good", "items.csv", GOOD_CSV)
    env.write_tenants(
        {
            "acme": [csv_instance(env.tmp_path / "bad", name="bad", **bad_options)],
            "globex": [csv_instance(env.tmp_path / "good", name="good")],
        }
    )


def rejects(env) -> dict[str, str]:
    return dict(env.rows("SELECT record_ref, reason FROM normalized.rejected_records ORDER BY 1"))


def normalize_logs(env) -> str:
    runs = env.instance.get_runs(filters=dg.RunsFilter(job_name="normalize_items"))
    return "\n".join(e.user_message for r in runs for e in env.instance.all_logs(r.run_id))


def test_nul_and_lone_surrogates_are_rejects_naming_the_field(env):
    # Without the check: PostgreSQL refused the NUL and failed the step for both instances.
    bad_and_good(env, meta_csv("Fine", "Nul\\u0000here", "Lone\\ud800"), mapping=META_MAPPING)
    bad, good = env.ingest()
    assert bad.status == "ok", bad.error
    assert (bad.rows_normalized, bad.rows_rejected) == (1, 2)
    assert good.status == "ok", good.error
    assert good.rows_normalized == 1
    assert rejects(env) == {
        "raw_csv.acme__bad:items.csv:2": "title: text holds a NUL character (\\u0000), "
        "which PostgreSQL cannot store",
        # pydantic refuses a lone surrogate itself (the pre-write check would too).
        "raw_csv.acme__bad:items.csv:3": "title: Input should be a valid string, "
        "unable to parse raw data as a unicode string",
    }
    # The payload keeps the raw row (as JSON text any warehouse stores).
    [(payload,)] = env.rows(
        "SELECT payload FROM normalized.rejected_records WHERE record_ref LIKE '%:2'"
    )
    assert "u0000" in payload
    assert env.rows("SELECT tenant_id, external_id, title FROM normalized.items ORDER BY 1") == [
        ("acme", "1", "Fine"),
        ("globex", "G1", "Good one"),
    ]
    # Nothing is left pending: the next run is quiet and the same.
    again = env.ingest()
    assert [o.status for o in again] == ["ok", "ok"]
    assert len(rejects(env)) == 2


def incompressible(length: int) -> str:
    return "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=length))


def test_a_batch_the_database_refuses_is_bisected_to_the_refused_record(env):
    # A key longer than a PostgreSQL btree entry can hold (about 2.7 kB) passes pydantic; the
    # database refuses it at the upsert. DuckDB stores it.
    long_key = incompressible(9000)
    body = "".join(f"{n},Item {n},https://x.example/{n},2026-01-01\n" for n in range(1, 7))
    bad_and_good(env, f"sku,name,link,updated\n{body}{long_key},Long,,2026-01-02\n")
    bad, good = env.ingest()
    assert bad.status == "ok", bad.error
    assert good.status == "ok" and good.rows_normalized == 1, good.error
    stored = {r[0] for r in env.rows("SELECT external_id FROM normalized.items")}
    assert {str(n) for n in range(1, 7)} | {"G1"} <= stored
    if env.warehouse.dialect == "duckdb":
        assert (bad.rows_normalized, bad.rows_rejected) == (7, 0)
        return
    assert (bad.rows_normalized, bad.rows_rejected) == (6, 1)
    [(ref, reason)] = rejects(env).items()
    assert ref == "raw_csv.acme__bad:items.csv:7"
    assert reason.startswith("refused by the warehouse: index row")  # PostgreSQL's own words
    assert "1 records the warehouse cannot store, rejected: raw_csv.acme__bad:items.csv:7" in (
        normalize_logs(env)
    )


def test_a_refused_record_of_a_one_transaction_batch_is_rejected_alone(warehouse_url):
    """A batch's rows and rejects are one transaction: bisecting inside it (a savepoint a try)
    still leaves the refused record alone out, and the batch's later writes (its rejects) are
    not lost to the refused statement. A null key: refused by both warehouses."""
    warehouse = Warehouse(warehouse_url)
    init_warehouse(warehouse)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    key = {"tenant_id": "acme", "source_type": "csv", "source_instance": "bad"}
    raw = {"_tenant_id": "acme", "_source_instance": "bad", "_dlt_load_id": "1"}
    validated = [
        (
            key
            | {"external_id": None if n == 4 else str(n), "title": f"Item {n}"}
            | {"raw_load_id": "1", "ingested_at": at},
            raw | {"_file": "items.csv", "_line": n},
        )
        for n in range(1, 8)
    ]
    with warehouse.transaction() as batch:
        written, refused = write_records(batch, ITEMS, validated)
        upsert_rejects(batch, [reject_row(r, "raw_csv.t", "csv", e, at) for r, e in refused])
    assert [r["external_id"] for r in written] == ["1", "2", "3", "5", "6", "7"]
    stored = warehouse.fetch_all(f"SELECT external_id FROM {ITEMS.qualified} ORDER BY 1")
    assert stored == [("1",), ("2",), ("3",), ("5",), ("6",), ("7",)]
    [(ref, reason)] = warehouse.fetch_all(
        f"SELECT record_ref, reason FROM {REJECTED_RECORDS.qualified}"
    )
    assert ref == "raw_csv.t:items.csv:4" and reason.startswith("refused by the warehouse: ")


@pytest.fixture
def bad_catalog() -> Iterator[CatalogApi]:
    """A catalog whose `released` is a timestamp, then garbage in its last product; whose
    `label` is a number, then text in one product."""
    products = sample_products(4)
    for product in products:
        product["released"] = product["updated_at"]
        product["label"] = product["id"] * 10
    products[3]["released"] = "not a date"
    products[2]["label"] = "Blue"
    api = CatalogApi(API_TOKEN, products)
    api.server.start()
    yield api
    api.server.stop()


def test_a_value_in_a_dlt_variant_column_is_validated_not_read_as_null(
    env, bad_catalog, catalog_api
):
    mapping = {"external_id": "id", "title": "label", "url": "url", "published_at": "released"}
    env.write_tenants(
        {
            "acme": [rest_api_instance(bad_catalog, name="shop", mapping=mapping)],
            "globex": [rest_api_instance(catalog_api)],
        }
    )
    bad, good = env.ingest()
    assert bad.status == "ok", bad.error
    columns = env.warehouse.table_columns("raw_rest_api")["acme__shop__products"]
    assert {"released__v_text", "label__v_text"} <= set(columns)  # what dlt really did
    assert (bad.rows_normalized, bad.rows_rejected) == (3, 1)
    [(ref, reason)] = rejects(env).items()
    assert ref.startswith("raw_rest_api.acme__shop__products:")
    assert reason.startswith("published_at: Input should be a valid datetime")
    # The text label, a valid title, is mapped (not a null title).
    shop = env.rows(
        "SELECT external_id, title, published_at FROM normalized.items "
        "WHERE source_instance = 'shop' ORDER BY 1"
    )
    assert [r[:2] for r in shop] == [("1", "10"), ("2", "20"), ("3", "Blue")]
    assert all(r[2] is not None for r in shop)
    assert good.status == "ok" and good.rows_normalized == 5


def test_a_load_that_cannot_be_normalized_is_quarantined_and_blocks_nothing(env):
    # JSON nested deeper than Python's parser can go: the mapper fails with RecursionError, not
    # with a record's reason, so the whole raw load cannot be normalized.
    hostile = "[" * 100_000
    bad_and_good(
        env,
        f'sku,meta,link,updated\n1,"{hostile}",,2026-01-01\n2,"{{}}",,2026-01-02\n',
        mapping=META_MAPPING,
    )
    bad, good = env.ingest()
    assert bad.status == "ok", bad.error
    assert good.status == "ok" and good.rows_normalized == 1, good.error
    assert (bad.rows_normalized, bad.rows_rejected) == (0, 1)
    [(load_id,)] = env.rows("SELECT DISTINCT _dlt_load_id FROM raw_csv.acme__bad")
    ref = f"raw_csv.acme__bad:load:{load_id}"
    reason = rejects(env)[ref]
    assert reason.startswith("raw load not normalized (quarantined; a replay retries it): ")
    assert "maximum recursion depth" in reason
    assert env.rows(
        "SELECT normalized_at FROM normalized.normalized_loads "
        "WHERE raw_table = 'raw_csv.acme__bad'"
    ) == [(None,)]
    assert f"quarantined raw load {load_id} of raw_csv.acme__bad (acme.bad)" in normalize_logs(env)
    assert env.rows("SELECT tenant_id FROM normalized.items") == [("globex",)]

    # Later runs are not blocked by it, nor do they retry it.
    write_csv(env.tmp_path / "good", "more.csv", GOOD_CSV.replace("G1", "G2"))
    again = env.ingest()
    assert [o.status for o in again] == ["ok", "ok"]
    assert env.rows("SELECT count(*) FROM normalized.items") == [(2,)]

    # Still replayable: with the hostile cell fixed in raw, a replay takes the load again and
    # the quarantine ends.
    env.warehouse.execute("UPDATE raw_csv.acme__bad SET meta = '{}' WHERE sku = '1'")
    result = env.defs.resolve_job_def("normalize_items").execute_in_process(
        instance=env.instance,
        run_config={"ops": {"normalized__items": {"config": {"replay": True}}}},
    )
    assert result.success
    assert ref not in rejects(env)
    assert env.rows("SELECT count(*) FROM normalized.items WHERE tenant_id = 'acme'") == [(2,)]
    assert env.rows(
        "SELECT normalized_at IS NOT NULL FROM normalized.normalized_loads "
        "WHERE raw_table = 'raw_csv.acme__bad'"
    ) == [(True,)]
