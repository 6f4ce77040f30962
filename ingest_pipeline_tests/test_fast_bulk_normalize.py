"""Fast tier: normalize's bulk path against its record path, over raw CSV rows good and bad.

A raw batch is an Arrow table shaped like a csv raw table as normalize reads it (the CSV's columns
as text, `_file`, `_line`, `_reject_reason`, `_raw_line`, the instance columns, `_dlt_load_id`,
`_dlt_id`), of one or more instances, one of which may be missing from the tenants file.

- The old path: every raw row through the record path (`_validate` with `map_csv_row`), which
  keeps the last record of a key, and its rejects.
- The new path: `normalize_in_bulk` with `map_csv_batch`, the rows it cannot settle handed to
  `_validate` (whose rejects are kept, as `normalize_source_type`'s `by_record` does).

Compared, exactly: the accepted records as the table stores them (every column, timestamps as
instants), with the raw row each came from; and the rejects, whole (record_ref, reason, payload,
lineage). No field is left out of any comparison: both paths are given the same `ingested_at`.
Each path's write step (`write_records`, `write_arrow_records`) is compared on a real DuckDB
warehouse per path (two tests, integration tier): the same rows stored, the same counts per
instance, the same rows refused for the same reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Set
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingest_pipeline.defs.normalized.arrow_batches import ROW
from ingest_pipeline.defs.normalized.normalize import (
    ENTITIES,
    InstancePrivacy,
    Refused,
    Validated,
    _validate,
    normalize_in_bulk,
    reject_row,
    write_arrow_records,
    write_records,
)
from ingest_pipeline.domain.entities import ITEMS, init_warehouse
from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.instances import ITEM_CSV_MAPPING
from ingest_pipeline.sources.csv.mapper import map_csv_batch, map_csv_row
from ingest_pipeline.sources.csv.source import RAW_LINE_COLUMN, REJECT_REASON_COLUMN
from ingest_pipeline.sources.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN

CORPUS = settings(
    max_examples=100,  # the fast tier stays under 30 s; 4,000 more found nothing
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ITEM = ENTITIES["items"]
QUALIFIED = "raw_csv.acme__shop"
AT = datetime(2026, 1, 5, 12, tzinfo=UTC)
LINEAGE = {"source_type": "csv", "ingested_at": AT}
LOADS = ["1700000000.1", "1700000000.2"]

# The CSV's columns, every one text as the csv source writes them (`meta__author`: the column a
# mapping's path `meta.author` reads, flattened).
CSV_COLUMNS = ["sku", "name", "link", "updated", "note", "who", "changed", "meta__author"]
RAW_SCHEMA = pa.schema(
    [
        *((column, pa.string()) for column in CSV_COLUMNS),
        ("_file", pa.string()),
        ("_line", pa.int64()),
        (REJECT_REASON_COLUMN, pa.string()),
        (RAW_LINE_COLUMN, pa.string()),
        (TENANT_COLUMN, pa.string()),
        (INSTANCE_COLUMN, pa.string()),
        ("_dlt_load_id", pa.string()),
        ("_dlt_id", pa.string()),
    ]
)

MAPPINGS = [
    ITEM_CSV_MAPPING,  # sku, name, link, updated: the sandbox catalog's
    {**ITEM_CSV_MAPPING, "summary": "note", "author": "who", "updated_at": "changed"},
    {**ITEM_CSV_MAPPING, "author": "meta.author"},  # a dotted path: its flattened column
    dict(reversed([*ITEM_CSV_MAPPING.items(), ("summary", "note")])),  # fields in another order
    # Lineage fields mapped: the lineage wins on both paths.
    {**ITEM_CSV_MAPPING, "source_instance": "note", "raw_load_id": "who", "ingested_at": "changed"},
    # The bulk path takes none of the rows of these:
    {**ITEM_CSV_MAPPING, "author": "missing"},  # no such column: the bulk mapper declines
    {**ITEM_CSV_MAPPING, "colour": "note"},  # no such field: pydantic forbids it
    {"title": "name", "url": "link"},  # the key's field not mapped at all
]
IN_BULK = 5  # the mappings before this one are the bulk path's


def instance(tenant: str, mapping: Mapping[str, str]) -> SourceInstance:
    return SourceInstance(tenant=tenant, type="csv", name="shop", options={"mapping": mapping})


# --------------------------------------------------------------------------- the corpus

# Each field's values: good ones (accepted, most of them settled in bulk) and odd ones (rejects,
# or accepted by the record path only).
GOOD_KEYS = ["e1", "e2", "e3", "e4", " e1 ", "e2\t", "é-ü", "12", "1.5"]
ODD_KEYS = [
    "e1\u00a0",  # stripped by pydantic, not by the bulk strip: the record path's
    "\u2003e3",
    "\x1ce2",
    "",
    "   ",
    "\t\n",
    "\u3000",
    None,
    "x" * 300,
    "a\x00b",
]
GOOD_TEXTS = [
    "Plain",
    "  padded\t",
    "",
    "   ",
    None,
    "mid dle",
    "é accent",
    "日本語のタイトル",
    "emoji 🎉",
    "line\nbreak",
    "12",
    "-0",
    "1.5e3",
    "x" * 300,
    "y" * 20_000,
]
ODD_TEXTS = ["\u00a0nbsp", "tail\u2003", "\x1cfs", "end\x1f", "\x85next", "a\x00b", "\u3000"]
GOOD_URLS = [
    "https://x.example/a",
    "http://x.example",
    " https://x.example/b ",
    "https://x.example/" + "p" * 5000,
    "https://x.example/a b",
    "https://x.example?q=1",
    "",
    "  ",
    None,
]
ODD_URLS = [
    "ftp://x.example",
    "https://",
    "https:// x",
    "https:/x.example",
    "//x.example",
    "x.example",
    "https://\u00a0x",
    "https://\x0bx",
    "https://é.example",
    "http://例え.jp/",
    "HTTPS://X",
    "https://x.example\n",
    "12",
]
GOOD_TIMESTAMPS = [
    "2026-01-02",
    "2026-01-02T10:00",
    "2026-01-02 10:00:00",
    "2026-01-02T10:00:00Z",
    "2026-01-02T10:00:00.5+01:00",
    "2026-01-02T10:00:00.123456-0530",
    "2024-02-29T23:59:59+23:59",
    "0002-01-01",
    "9998-12-31T23:59:59Z",
    " 2026-01-02T10:00:00Z ",
    "",
    "  ",
    None,
]
ODD_TIMESTAMPS = [
    "2026-01-02T10:00:00z",
    "2026-01-02t10:00:00",
    "2026-01-02T10:00:00.1234567",
    "2026-01-02T10:00:00+25:00",
    "2026-01-02T10:00:60",
    "2026-01-02T24:00:00",
    "2026-01-02T10",
    "2026-01-02Z",
    "2026-02-30",
    "2026-02-29",
    "2026-13-01",
    "2026-1-2",
    "20260102",
    "0000-01-01",
    "0001-01-01",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31",
    "9999-12-31T23:59:59-14:00",
    "10000-01-01",
    "1700000000",
    "1700000000.5",
    "-1",
    "\u00a02026-01-02",
    "yesterday",
]
FLAGS = [
    "3 fields, the header has 4",
    "line holds a NUL byte",
    "line longer than 1048576 bytes",
    "CSV syntax error: '\"' expected after '\"'",
]
OFFSETS = ["", "", "Z", "+00:00", "-00:00", "+0000", "+14:00", "-14:00", "+05:30", "-0800", "+2359"]
OFFSETS += ["+24:00", "+0560", "+5", "UTC", " Z"]


@st.composite
def timestamp_texts(draw: st.DrawFn, offsets: list[str]) -> str:
    """An ISO 8601 text of any year 1-9999, in the forms the bulk path settles and a few more."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    form = draw(st.sampled_from(["date", "minutes", "seconds", "milliseconds", "microseconds"]))
    text = (
        moment.date().isoformat()
        if form == "date"
        else moment.isoformat(sep=draw(st.sampled_from("T ")), timespec=form)
    )
    return text + draw(st.sampled_from(offsets))


@st.composite
def cell(
    draw: st.DrawFn, good: st.SearchStrategy[str | None], odd: list[str | None], fresh: int = 12
) -> str | None:
    """A good value four times in five, else an odd one or (one in three) any text."""
    kind = draw(st.integers(0, 14))
    if kind < 12:
        return draw(good)
    return draw(st.sampled_from(odd)) if kind < 14 else draw(st.text(max_size=fresh))


# Arrow holds no lone surrogate (nor does a CSV the csv source decoded): st.text() draws none.
GOOD_TEXT = st.sampled_from(GOOD_TEXTS)
GOOD_TIMESTAMP = st.one_of(
    st.sampled_from(GOOD_TIMESTAMPS), timestamp_texts(["", "Z", "+00:00", "+05:30", "-0800"])
)
GOOD = {
    "sku": st.sampled_from(GOOD_KEYS),
    "name": GOOD_TEXT,
    "link": st.sampled_from(GOOD_URLS),
    "updated": GOOD_TIMESTAMP,
    "note": GOOD_TEXT,
    "who": GOOD_TEXT,
    "changed": GOOD_TIMESTAMP,
    "meta__author": GOOD_TEXT,
}
TIMESTAMP = cell(st.one_of(GOOD_TIMESTAMP, timestamp_texts(OFFSETS)), ODD_TIMESTAMPS, fresh=8)
ANY = {
    "sku": cell(GOOD["sku"], ODD_KEYS, fresh=3),
    "name": cell(GOOD_TEXT, ODD_TEXTS),
    "link": cell(GOOD["link"], ODD_URLS),
    "updated": TIMESTAMP,
    "note": cell(GOOD_TEXT, ODD_TEXTS),
    "who": cell(GOOD_TEXT, ODD_TEXTS),
    "changed": TIMESTAMP,
    "meta__author": cell(GOOD_TEXT, ODD_TEXTS),
}


@st.composite
def raw_row(draw: st.DrawFn, owners: list[tuple[str, str]], columns: list[str]) -> dict[str, Any]:
    # Half the rows good in every cell: most rows of a clean file are settled in bulk. Only the
    # columns a mapping reads are drawn (the others are null): drawing is most of the time taken.
    given = GOOD if draw(st.booleans()) else ANY
    cells = draw(st.fixed_dictionaries({column: given[column] for column in columns}))
    cells = {**dict.fromkeys(CSV_COLUMNS), **cells}
    # The first owner's rows most: an unknown instance's rows are all rejects.
    tenant, name = draw(st.sampled_from([owners[0], *owners]))
    reason = raw_line = None
    kind = draw(st.integers(0, 19))
    if kind == 0:  # a line the csv source rejected: no fields, its reason and text
        cells = dict.fromkeys(CSV_COLUMNS)
        reason, raw_line = draw(st.sampled_from(FLAGS)), draw(st.sampled_from(["a,b,c", "é,\t"]))
    elif kind == 1:  # flagged with fields all the same (never written so): the flag wins
        reason, raw_line = draw(st.sampled_from(FLAGS)), "x"
    elif kind == 2:  # an empty reason is no reason on the record path
        reason = ""
    return {
        **cells,
        "_file": draw(st.sampled_from(["a.csv", "sub/b.csv"])),
        REJECT_REASON_COLUMN: reason,
        RAW_LINE_COLUMN: raw_line,
        TENANT_COLUMN: tenant,
        INSTANCE_COLUMN: name,
        "_dlt_load_id": draw(st.sampled_from(LOADS)),
    }


@st.composite
def raw_batches(draw: st.DrawFn) -> tuple[pa.Table, dict[tuple[str, str], SourceInstance]]:
    """A raw batch, in the raw read's order, and the instances of the tenants file."""
    # The bulk path's mappings twice as often: the others send every row to the record path.
    mappings = st.sampled_from([*MAPPINGS[:IN_BULK], *MAPPINGS])
    known = {
        ("acme", "shop"): instance("acme", draw(mappings)),
        ("beta", "shop"): instance("beta", draw(mappings)),
    }
    owners = draw(
        st.sampled_from(
            [
                [("acme", "shop")],
                [("acme", "shop")],
                [("acme", "shop"), ("acme", "ghost")],  # ghost: not in the tenants file
                [("acme", "shop"), ("beta", "shop")],
                [("acme", "shop"), ("beta", "shop"), ("acme", "ghost")],
                [("acme", "ghost")],
            ]
        )
    )
    read = {
        path.replace(".", "__") for i in known.values() for path in i.options["mapping"].values()
    }
    rows = draw(st.lists(raw_row(owners, [c for c in CSV_COLUMNS if c in read]), max_size=40))
    shape = draw(st.sampled_from(["whole", "sliced", "chunked"]))
    cuts = draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=3))
    note(f"raw batch: {shape}, cut at {sorted(cuts)}" if shape == "chunked" else shape)
    return raw_table(rows, shape, cuts), known


PADDING = {
    **dict.fromkeys(CSV_COLUMNS, "pad"),
    "_file": "pad.csv",
    "_line": 0,
    REJECT_REASON_COLUMN: None,
    RAW_LINE_COLUMN: None,
    TENANT_COLUMN: "acme",
    INSTANCE_COLUMN: "shop",
    "_dlt_load_id": LOADS[0],
    "_dlt_id": "pad",
}


def raw_table(
    rows: list[dict[str, Any]], shape: str = "whole", cuts: Set[int] = frozenset()
) -> pa.Table:
    """The rows numbered (`_line` a row's place, `_dlt_id` its own) in the raw query's order, as
    one array a column (`whole`), as a slice of a larger batch (`sliced`: how PostgreSQL's raw
    read hands them on) or in chunks cut at the positions `cuts` (`chunked`)."""
    numbered = [{**row, "_line": n, "_dlt_id": f"row-{n}"} for n, row in enumerate(rows, start=1)]
    numbered.sort(key=lambda row: (row["_dlt_load_id"], row["_file"], row["_line"]))
    if shape == "sliced":  # rows before and after that must never be read
        padded = [PADDING] * 3 + numbered + [PADDING] * 2
        return pa.Table.from_pylist(padded, schema=RAW_SCHEMA).slice(3, len(numbered))
    if shape == "chunked" and len(numbered) > 1:
        at = sorted(cuts)
        spans = zip([0, *at], [*at, len(numbered)], strict=True)
        batches = [pa.RecordBatch.from_pylist(numbered[a:b], schema=RAW_SCHEMA) for a, b in spans]
        return pa.Table.from_batches(batches)
    return pa.Table.from_pylist(numbered, schema=RAW_SCHEMA)


# --------------------------------------------------------------------------- the two paths


Outcome = dict[str, Any]


def by_key(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: tuple(r[k] for k in ITEMS.key))


def by_ref(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rejects, key=lambda r: (r["tenant_id"], r["source_instance"], r["record_ref"]))


def validate(
    rows: list[dict[str, Any]], instances: Mapping[tuple[str, str], SourceInstance]
) -> tuple[list[Validated], list[dict[str, Any]]]:
    return _validate(rows, QUALIFIED, ITEM, "csv", map_csv_row, InstancePrivacy(instances), AT)


def refusals(refused: list[tuple[dict[str, Any], Exception]]) -> list[dict[str, Any]]:
    return by_ref([reject_row(row, QUALIFIED, "csv", exc, AT) for row, exc in refused])


def old_path(
    raw: pa.Table,
    instances: Mapping[tuple[str, str], SourceInstance],
    warehouse: Warehouse | None = None,
) -> Outcome:
    """The record path's outcome; with a warehouse, also what its write step stores."""
    validated, rejects = validate(raw.to_pylist(), instances)
    stored = ITEMS.to_arrow([record for record, _ in validated]).to_pylist()
    outcome = {
        "records": by_key(stored),
        "from_lines": sorted(
            (tuple(r[k] for k in ITEMS.key), row["_line"]) for r, row in validated
        ),
        "rejects": by_ref(rejects),
    }
    if warehouse is not None:
        written, refused = write_records(warehouse, ITEMS, validated)
        by_instance = Counter(f"{r['tenant_id']}.{r['source_instance']}" for r in written)
        outcome |= written_outcome(warehouse, dict(by_instance), refused)
    return outcome


def new_path(
    raw: pa.Table,
    instances: Mapping[tuple[str, str], SourceInstance],
    warehouse: Warehouse | None = None,
) -> Outcome:
    """The bulk path's outcome; with a warehouse, also what its write step stores."""
    rejects: list[dict[str, Any]] = []
    to_record_path: list[dict[str, Any]] = []

    def by_record(rows: list[dict[str, Any]]) -> list[Validated]:
        to_record_path.extend(rows)
        validated, found = validate(rows, instances)
        rejects.extend(found)
        return validated

    records = normalize_in_bulk(
        raw, ITEMS, map_csv_batch, InstancePrivacy(instances), LINEAGE, by_record
    )
    lines = raw.column("_line").to_pylist()
    stored = records.drop_columns([ROW]).to_pylist()
    outcome = {
        "records": by_key(stored),
        "from_lines": sorted(
            (tuple(r[k] for k in ITEMS.key), lines[n])
            for r, n in zip(stored, records.column(ROW).to_pylist(), strict=True)
        ),
        "rejects": by_ref(rejects),
        "record_path_lines": sorted(row["_line"] for row in to_record_path),
    }
    if warehouse is not None:
        written, refused = write_arrow_records(warehouse, ITEMS, raw, records)
        outcome |= written_outcome(warehouse, written, refused)
    return outcome


def written_outcome(
    warehouse: Warehouse, by_instance: Mapping[str, int], refused: list[Refused]
) -> Outcome:
    """What a write step left: the rows the table holds, counts per instance, refusals."""
    columns = ", ".join(ITEMS.column_names)
    stored = warehouse.fetch_all(f"SELECT {columns} FROM {ITEMS.qualified}")
    return {
        "written": by_key([dict(zip(ITEMS.column_names, r, strict=True)) for r in stored]),
        "written_by_instance": dict(by_instance),
        "refused": refusals(refused),
    }


def run_both(
    raw: pa.Table,
    instances: Mapping[tuple[str, str], SourceInstance],
    warehouses: tuple[Warehouse, Warehouse] | None = None,
) -> tuple[Outcome, Outcome, list[int]]:
    """Both outcomes (with `warehouses`, the old path's and the new one's, their writes too),
    and the `_line`s of the rows the bulk path left to the record path."""
    old_warehouse, new_warehouse = warehouses or (None, None)
    old, new = old_path(raw, instances, old_warehouse), new_path(raw, instances, new_warehouse)
    assert len(new["records"]) == len({tuple(r[k] for k in ITEMS.key) for r in new["records"]})
    return old, new, new.pop("record_path_lines")


# --------------------------------------------------------------------------- the tests


@CORPUS
@given(raw_batches())
def test_the_bulk_path_gives_the_record_paths_records_and_rejects(
    batch: tuple[pa.Table, dict[tuple[str, str], SourceInstance]],
) -> None:
    raw, instances = batch
    note_batch(raw, instances)
    old, new, _ = run_both(raw, instances)
    assert_same(old, new)


def assert_same(old: Outcome, new: Outcome) -> None:
    assert new.keys() == old.keys()
    for part in old:  # one part at a time: pytest's diff of the part that differs
        assert new[part] == old[part], part


def note_batch(raw: pa.Table, instances: Mapping[tuple[str, str], SourceInstance]) -> None:
    """The failing example, legibly: the mappings, and each raw row's non-null values."""
    note(f"mappings: { {k: i.options['mapping'] for k, i in instances.items()} }")
    for values in raw.to_pylist():
        shown = {
            k: f"{v[:20]!r}...({len(v)} chars)" if isinstance(v, str) and len(v) > 40 else v
            for k, v in values.items()
            if v is not None
        }
        note(repr(shown))


def row(sku: Any, name: Any, link: Any, updated: Any, **more: Any) -> dict[str, Any]:
    """A raw row of acme.shop, line numbers to come (`raw_table`)."""
    return {
        **dict.fromkeys(CSV_COLUMNS),
        "sku": sku,
        "name": name,
        "link": link,
        "updated": updated,
        "_file": "a.csv",
        REJECT_REASON_COLUMN: None,
        RAW_LINE_COLUMN: None,
        TENANT_COLUMN: "acme",
        INSTANCE_COLUMN: "shop",
        "_dlt_load_id": LOADS[0],
        **more,
    }


TS_ERROR = "published_at: Input should be a valid datetime or date"
EXAMPLE = [
    row("e1", "First", "https://shop.example/e1", "2026-01-02T10:00:00Z"),  # 1: bulk
    row(" e2 ", "  Café  ", "http://shop.example", "2026-01-02"),  # 2: bulk, stripped
    row("   ", "No key", "https://shop.example/x", None),  # 3
    row("e3", "Bad link", "ftp://shop.example", None),  # 4
    row("e4", "Bad time", None, "yesterday"),  # 5
    row("e5", "No such day", None, "2026-02-30"),  # 6
    row("e6", "Year 0 in UTC", None, "0001-01-01T00:00:00+14:00"),  # 7
    row(None, None, None, None, _reject_reason="3 fields, the header has 4", _raw_line="a,b,c"),
    row("e7", "Ghost's", None, None, _source_instance="ghost"),  # 9: not in the tenants file
    row("e8", "Unix time", None, "1700000000"),  # 10: record path, valid
    row("e1\u00a0", "Second", "https://shop.example/e1b", "2026-01-03"),  # 11: e1 again, wins
    row("e9", "日本語 " + "x" * 300, "https://例え.jp/", "2026-01-02 10:00"),  # 12: record path
    row("e1", "Beta's", None, None, note="red", _tenant_id="beta"),  # 13: beta maps no key
]


def test_a_hand_written_batch_accepts_and_rejects_the_same_rows_for_the_same_reasons() -> None:
    instances = {
        ("acme", "shop"): instance("acme", ITEM_CSV_MAPPING),
        ("beta", "shop"): instance("beta", {"title": "name", "colour": "note"}),
    }
    raw = raw_table(EXAMPLE)
    old, new, record_path_lines = run_both(raw, instances)
    assert_same(old, new)
    rejects = {r["record_ref"].removeprefix(f"{QUALIFIED}:a.csv:"): r for r in new["rejects"]}
    assert {line: r["reason"] for line, r in rejects.items()} == {
        "3": "external_id: Input should be a valid string",
        "4": "url: String should match pattern '^https?://[^\\s/?#]+'",
        "5": f"{TS_ERROR}, input is too short",
        "6": f"{TS_ERROR}, day value is outside expected range",
        "7": "published_at: Value error, timestamp out of range: must fall within years 1 to "
        "9999 in UTC",
        "8": "3 fields, the header has 4",
        "9": "csv source acme.ghost is not in the tenants file",
        "13": "external_id: Field required; colour: Extra inputs are not permitted",
    }
    assert rejects["8"]["payload"] == "a,b,c"  # a flagged line's payload is its text
    assert (rejects["9"]["tenant_id"], rejects["9"]["source_instance"]) == ("acme", "ghost")
    titles = {r["external_id"]: (r["title"], r["url"], r["published_at"]) for r in new["records"]}
    assert titles == {
        "e1": ("Second", "https://shop.example/e1b", datetime(2026, 1, 3, tzinfo=UTC)),
        "e2": ("Café", "http://shop.example", datetime(2026, 1, 2, tzinfo=UTC)),
        "e8": ("Unix time", None, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        "e9": ("日本語 " + "x" * 300, "https://例え.jp/", datetime(2026, 1, 2, 10, tzinfo=UTC)),
    }
    assert dict(new["from_lines"])[("acme", "csv", "shop", "e1")] == 11  # the last e1 won
    # Not a record path with extra steps: rows 1 and 2 were settled in bulk. The record path saw
    # the flagged row, the ghost's, the bad ones, unix time, e1's no-break space, a URL pattern
    # on non-ASCII text and beta's (its mapping has a field the items do not).
    assert record_path_lines == list(range(3, 14))


def duckdb_pair(tmp_path: Path) -> tuple[Warehouse, Warehouse]:
    """A real DuckDB warehouse for each path's write step."""
    pair = (
        Warehouse(f"duckdb:///{tmp_path / 'record_path.duckdb'}"),
        Warehouse(f"duckdb:///{tmp_path / 'bulk_path.duckdb'}"),
    )
    for warehouse in pair:
        init_warehouse(warehouse)
    return pair


@pytest.mark.integration
def test_both_paths_store_the_hand_written_batch_alike(tmp_path: Path) -> None:
    instances = {
        ("acme", "shop"): instance("acme", ITEM_CSV_MAPPING),
        ("beta", "shop"): instance("beta", {"title": "name", "colour": "note"}),
    }
    old, new, _ = run_both(raw_table(EXAMPLE), instances, duckdb_pair(tmp_path))
    assert_same(old, new)
    assert new["written_by_instance"] == {"acme.shop": 4} and new["refused"] == []
    assert new["written"] == new["records"]  # the table holds what the path gave, nothing else


@pytest.mark.integration
def test_text_a_warehouse_cannot_store_is_refused_alike(tmp_path: Path) -> None:
    instances = {("acme", "shop"): instance("acme", ITEM_CSV_MAPPING)}
    raw = raw_table([row("e1", "a\x00b", None, None), row("e2", "fine", None, None)])
    old, new, record_path_lines = run_both(raw, instances, duckdb_pair(tmp_path))
    assert_same(old, new)
    [refused] = new["refused"]
    assert refused["record_ref"] == f"{QUALIFIED}:a.csv:1"
    assert refused["reason"].startswith("title: text holds a NUL character")
    assert [r["external_id"] for r in new["written"]] == ["e2"] and record_path_lines == []


def test_a_clean_batch_is_settled_in_bulk() -> None:
    instances = {("acme", "shop"): instance("acme", ITEM_CSV_MAPPING)}
    rows = [
        row(f"sku-{n}", f"Item {n}", f"https://shop.example/p/{n}", f"2026-01-{n % 28 + 1:02d}")
        for n in range(500)
    ]
    old, new, record_path_lines = run_both(raw_table(rows), instances)
    assert_same(old, new)
    assert len(new["records"]) == 500 and record_path_lines == []


def test_typed_columns_a_csv_never_has_are_taken_alike() -> None:
    """A csv raw table holds text; a column of another type (a number where text is due, a
    typed timestamp) the bulk checks leave to the record path or take as typed."""
    schema = RAW_SCHEMA.set(RAW_SCHEMA.get_field_index("name"), pa.field("name", pa.int64()))
    updated = pa.field("updated", pa.timestamp("us", tz="UTC"))
    schema = schema.set(schema.get_field_index("updated"), updated)
    rows = [
        row("e1", 12, None, datetime(2026, 1, 2, 10, tzinfo=UTC)),
        row("e2", None, None, datetime(2026, 1, 2, 10, tzinfo=UTC)),
        row("e3", None, None, datetime(1, 1, 1, tzinfo=UTC)),  # year 1: the record path's
        row("e4", -7, None, None),
    ]
    numbered = [{**r, "_line": n, "_dlt_id": f"row-{n}"} for n, r in enumerate(rows, start=1)]
    raw = pa.Table.from_pylist(numbered, schema=schema)
    instances = {("acme", "shop"): instance("acme", ITEM_CSV_MAPPING)}
    old, new, record_path_lines = run_both(raw, instances)
    assert_same(old, new)
    assert record_path_lines == [1, 3, 4]
    assert [r["title"] for r in new["records"]] == ["12", None, None, "-7"]
