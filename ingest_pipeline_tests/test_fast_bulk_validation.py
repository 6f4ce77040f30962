"""The bulk validator against the record path (pydantic), over a corpus of good and bad values.

Every row the bulk path accepts must be the record the record path gives, value for value; every
row the record path rejects must go to the record path (where its reject reason is written). The
clean forms must be settled in bulk, or the bulk path would be a record path with extra steps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError

from ingest_pipeline.defs.normalized.models import blank_to_none
from ingest_pipeline.domain.bulk_validation import field_rules, validate_in_bulk
from ingest_pipeline.domain.entities import EVENTS, ITEMS, Table

TEXTS = [
    "plain",
    "  padded\t",
    "",
    "   ",
    None,
    "\u00a0nbsp",
    "tail\u2003",
    "\x1cfs",
    "mid dle",
    "é accent",
    "x" * 300,
    "line\nbreak",
    "\x85next",
    "end\x1f",
    "\u3000",
]
URLS = [
    "https://x.example/a",
    "http://x.example",
    " https://x.example/b ",
    "ftp://x.example",
    "https://",
    "https:// x",
    "https://\u00a0x",
    "https://\x0bx",
    "https://é.example",
    "",
    None,
    "HTTPS://X",
]
TIMESTAMPS = [
    "2026-01-02",
    "2026-01-02T10:00",
    "2026-01-02 10:00:00",
    "2026-01-02T10:00:00Z",
    "2026-01-02T10:00:00.5+01:00",
    "2026-01-02T10:00:00.123456-0530",
    "2026-01-02T10:00:00.1234567",
    "2026-02-30",
    "2026-02-29",
    "2024-02-29T23:59:59+23:59",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0002-01-01",
    "1700000000",
    "2026-01-02T24:00:00",
    "2026-01-02T10",
    "2026-1-2",
    " 2026-01-02T10:00:00Z ",
    "2026-01-02t10:00:00",
    "",
    None,
    "yesterday",
]
EVENT_TYPES = ["VIEW", "view", "A.B:C-D_1", "", None, "X" * 65, "ÉVENT", "A\x0b", "A B"]


def record_path(table: Table, fields: dict[str, Any]) -> dict[str, Any] | None:
    """What normalize's record path makes of a mapper's fields (None: a reject)."""
    try:
        return table.validator.validate_python(blank_to_none(fields))
    except (ValidationError, ValueError, TypeError):
        return None


def compare(table: Table, rows: list[dict[str, Any]]) -> int:
    """Check the bulk verdicts against the record path; returns how many were settled in bulk."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    fields = pa.Table.from_pylist(
        rows, schema=pa.schema([(n, _input_type(rows, n)) for n in names])
    )
    verdict = validate_in_bulk(table, fields)
    accepted = dict(zip(verdict.valid_rows.to_pylist(), verdict.valid.to_pylist(), strict=True))
    assert sorted([*accepted, *verdict.record_rows.to_pylist()]) == list(range(len(rows)))
    for index, row in enumerate(rows):
        expected = record_path(table, row)
        if index not in accepted:
            continue  # the record path decides it (and writes the reason if it rejects)
        assert expected is not None, f"bulk accepted what pydantic rejects: {row}"
        [stored] = table.to_arrow([expected]).to_pylist()
        assert accepted[index] == stored, row
    return len(accepted)


def _input_type(rows: list[dict[str, Any]], name: str) -> pa.DataType:
    values = [row.get(name) for row in rows if row.get(name) is not None]
    if values and all(isinstance(v, datetime) for v in values):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def _lineage(n: int) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "source_type": "csv",
        "source_instance": "shop",
        "raw_load_id": "1700000000.1",
        "ingested_at": datetime(2026, 1, 2, tzinfo=UTC),
        "external_id": f"id-{n}",
    }


def test_items_corpus_bulk_verdicts_are_the_record_paths():
    combos = itertools.product(TEXTS, URLS, TIMESTAMPS)
    rows = [
        {**_lineage(n), "title": text, "url": url, "published_at": ts}
        for n, (text, url, ts) in enumerate(combos)
    ]
    settled = compare(ITEMS, rows)
    # The corpus is mostly odd values on purpose; its clean forms are settled in bulk.
    accepted = sum(record_path(ITEMS, row) is not None for row in rows)
    assert settled >= 0.35 * accepted


@pytest.mark.parametrize("field", ["external_id", "tenant_id", "raw_load_id"])
def test_required_text_blank_or_missing_goes_to_the_record_path(field: str):
    rows = [{**_lineage(n), field: value} for n, value in enumerate(TEXTS)]
    compare(ITEMS, rows)
    missing = [{k: v for k, v in _lineage(0).items() if k != field}]
    verdict = validate_in_bulk(ITEMS, pa.Table.from_pylist(missing))
    assert verdict.record_rows.to_pylist() == [0]


def test_clean_rows_are_all_settled_in_bulk():
    rows = [
        {
            **_lineage(n),
            "title": f"Item {n}",
            "url": f"https://shop.example/p/{n}",
            "updated_at": f"2026-01-{n % 28 + 1:02d}",
        }
        for n in range(1000)
    ]
    assert compare(ITEMS, rows) == 1000


def test_an_unknown_field_sends_every_row_to_the_record_path():
    rows = [{**_lineage(0), "colour": "red"}]
    verdict = validate_in_bulk(ITEMS, pa.Table.from_pylist(rows))
    assert verdict.record_rows.to_pylist() == [0] and verdict.valid.num_rows == 0


def test_events_lengths_patterns_and_typed_timestamps():
    rows = [
        {
            "tenant_id": "acme",
            "source_type": "events",
            "source_instance": "app",
            "event_id": event_id,
            "event_type": event_type,
            "occurred_at": occurred,
            "item_id": None,
            "author_id": None,
            "actor_id": None,
            "ip": None,
            "session_id": None,
            "properties": None,
            "raw_load_id": "u1",
            "ingested_at": datetime(2026, 1, 2, tzinfo=UTC),
        }
        for event_id, event_type, occurred in itertools.product(
            ["e1", "", "x" * 256, "x" * 257, " e2 "],
            EVENT_TYPES,
            [datetime(2026, 1, 5, 10, tzinfo=UTC), None],
        )
    ]
    assert compare(EVENTS, rows) > 0


def test_the_rules_read_from_the_annotations():
    rules = field_rules(ITEMS)
    assert rules["external_id"].min_length == 1 and rules["external_id"].required
    assert rules["url"].pattern and rules["url"].nullable and not rules["url"].required
    assert rules["published_at"].in_bulk and rules["published_at"].kind == "timestamptz"
    assert field_rules(EVENTS)["event_type"].max_length == 64


def test_an_empty_batch_is_an_empty_verdict():
    empty = pa.Table.from_pylist([_lineage(0)]).slice(0, 0)  # every required column, no row
    verdict = validate_in_bulk(ITEMS, empty)
    assert verdict.valid.num_rows == 0 and len(verdict.record_rows) == 0
