"""CSV faults stay in their row: ragged rows, a line not UTF-8, a NUL, an overlong line (real
Dagster runs on DuckDB and PostgreSQL), a duplicate header fails its instance alone; and the
reader itself, under hypothesis, yields rows or reject rows and raises nothing but CsvFileError."""

import codecs
import csv
import io
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_pipeline.sources.csv.source import FILE_COLUMNS, CsvFileError, read_csv_file
from ingest_pipeline_tests.conftest import csv_instance

HEADER = b"sku,name,link,updated\n"


def write(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def items(env) -> dict[str, str]:
    return dict(env.rows("SELECT external_id, title FROM normalized.items ORDER BY 1"))


def rejects(env) -> dict[str, tuple[str, str]]:
    rows = env.rows("SELECT record_ref, reason, payload FROM normalized.rejected_records")
    return {ref: (reason, payload) for ref, reason, payload in rows}


def test_ragged_rows_are_rejects_and_lines_are_physical(env):
    landing = env.tmp_path / "landing"
    write(
        landing,
        "items.csv",
        b"sku,name,link,updated,note\n"
        b"1,One,https://x.example/1,2026-01-01,fine\n"
        b"2,Two,https://x.example/2,2026-01-02\n"  # a column missing
        b"\n"
        b'3,"Three,\n continued",https://x.example/3,2026-01-03,\n'
        b"4,Four,https://x.example/4,2026-01-04,a,extra\n"  # a field too many
        b"5,Five,https://x.example/5,2026-01-05\n"
        b"6,Six,https://x.example/6,2026-01-06,fine\n",
    )
    env.write_tenants({"acme": [csv_instance(landing)]})
    [outcome] = env.ingest()
    assert outcome.status == "ok", outcome.error
    assert (outcome.rows_loaded, outcome.rows_normalized, outcome.rows_rejected) == (6, 3, 3)
    assert items(env) == {"1": "One", "3": "Three,\n continued", "6": "Six"}
    ref = "raw_csv.acme__catalog:items.csv:"
    assert rejects(env) == {
        f"{ref}2": ("row has 4 fields, the header has 5", "2,Two,https://x.example/2,2026-01-02"),
        f"{ref}6": (
            "row has 6 fields, the header has 5",
            "4,Four,https://x.example/4,2026-01-04,a,extra",
        ),
        f"{ref}7": ("row has 4 fields, the header has 5", "5,Five,https://x.example/5,2026-01-05"),
    }
    # `_line` counts physical lines from the header: the blank line and the quoted newline too.
    raw = env.rows("SELECT sku, _line FROM raw_csv.acme__catalog ORDER BY _line")
    assert raw == [("1", 1), (None, 2), ("3", 4), (None, 6), (None, 7), ("6", 8)]


def test_a_line_not_utf8_is_latin1_alone_unless_the_encoding_is_set(env):
    body = (
        HEADER
        + "1,Crème brûlée,,2026-01-01\n".encode()
        + "2,Café,,2026-01-02\n".encode("latin-1")
        + "3,Smørrebrød,,2026-01-03\n".encode()
    )
    mixed, strict = env.tmp_path / "mixed", env.tmp_path / "strict"
    write(mixed, "menu.csv", body)
    write(strict, "menu.csv", body)
    env.write_tenants(
        {
            "acme": [
                csv_instance(mixed, name="mixed"),
                csv_instance(strict, name="strict", encoding="utf-8"),
            ]
        }
    )
    by_name = {o.instance.name: o for o in env.ingest()}
    assert by_name["mixed"].status == by_name["strict"].status == "ok"
    assert (by_name["mixed"].rows_normalized, by_name["mixed"].rows_rejected) == (3, 0)
    assert (by_name["strict"].rows_normalized, by_name["strict"].rows_rejected) == (2, 1)
    titles = env.rows(
        "SELECT source_instance, external_id, title FROM normalized.items ORDER BY 1, 2"
    )
    assert titles == [
        ("mixed", "1", "Crème brûlée"),  # no mojibake beside the Latin-1 line
        ("mixed", "2", "Café"),
        ("mixed", "3", "Smørrebrød"),
        ("strict", "1", "Crème brûlée"),
        ("strict", "3", "Smørrebrød"),
    ]
    [(reason, payload)] = rejects(env).values()
    assert reason == "line is not valid utf-8"
    assert payload.startswith("2,Caf")


def test_nul_and_overlong_lines_are_rejects(env, monkeypatch):
    monkeypatch.setenv("INGEST_MAX_LINE_BYTES", "200")
    landing = env.tmp_path / "landing"
    write(
        landing,
        "items.csv",
        HEADER
        + b"1,One,https://x.example/1,2026-01-01\n"
        + b"2,N\x00ul,https://x.example/2,2026-01-02\n"
        + b"3,"
        + b"x" * 300
        + b",https://x.example/3,2026-01-03\n"
        + b"4,Four,https://x.example/4,2026-01-04\n",
    )
    env.write_tenants({"acme": [csv_instance(landing)]})
    [outcome] = env.ingest()
    # On PostgreSQL too: the NUL never reaches the raw load.
    assert outcome.status == "ok", outcome.error
    assert (outcome.rows_loaded, outcome.rows_normalized, outcome.rows_rejected) == (4, 2, 2)
    assert items(env) == {"1": "One", "4": "Four"}
    found = rejects(env)
    nul_reason, nul_payload = found["raw_csv.acme__catalog:items.csv:2"]
    assert nul_reason == "row holds a NUL byte (0x00), which PostgreSQL cannot store"
    assert nul_payload == "2,N\\u0000ul,https://x.example/2,2026-01-02"
    long_reason, long_payload = found["raw_csv.acme__catalog:items.csv:3"]
    assert long_reason == "line is longer than INGEST_MAX_LINE_BYTES (200 bytes): 333 bytes"
    assert long_payload.startswith("3,xxx") and long_payload.endswith("[...]")


def test_duplicate_header_names_fail_only_their_instance(env):
    bad, good = env.tmp_path / "bad", env.tmp_path / "good"
    write(bad, "catalog.csv", b"sku,name,link,name\n1,One,https://x.example/1,One again\n")
    write(good, "g.csv", HEADER + b"9,Nine,,2026-01-01\n")
    env.write_tenants({"acme": [csv_instance(bad, name="bad"), csv_instance(good, name="good")]})
    bad_outcome, good_outcome = env.ingest()
    assert bad_outcome.status == "failed"
    assert "catalog.csv: duplicate header names: name (columns 2 and 4)" in bad_outcome.error
    assert good_outcome.status == "ok" and good_outcome.rows_normalized == 1
    assert items(env) == {"9": "Nine"}


# --- the reader, under hypothesis ---------------------------------------------------------

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
# Bytes that mean something to a CSV reader, so that arbitrary files hit its corners often.
PIECES = [
    b"a",
    b",",
    b";",
    b"\t",
    b" ",
    b'"',
    b"\n",
    b"\r",
    b"\x00",
    b"\xe9",
    b"\xc3\xa9",
    b"x" * 30,
]
CSVISH = st.lists(st.sampled_from([*PIECES, codecs.BOM_UTF8]), max_size=60).map(b"".join)


def read_all(path: Path, **options) -> list[dict]:
    return [row for batch in read_csv_file(str(path), path.name, **options) for row in rows(batch)]


def rows(batch: pa.RecordBatch | pa.Table) -> list[dict]:
    assert tuple(batch.schema.names[-len(FILE_COLUMNS) :]) == FILE_COLUMNS
    return batch.to_pylist()


def check_rows(found: list[dict], physical_lines: int) -> None:
    """Every row a row or a reject with its reason; no NUL anywhere; lines in order."""
    lines = [row["_line"] for row in found]
    assert lines == sorted(set(lines)) and all(1 <= n <= physical_lines for n in lines)
    for row in found:
        data = {k: v for k, v in row.items() if k not in FILE_COLUMNS}
        if row["_reject_reason"] is None:
            assert row["_raw_line"] is None
        else:
            assert row["_reject_reason"] and isinstance(row["_raw_line"], str)
            assert all(v is None for v in data.values())
        for value in row.values():
            assert not (isinstance(value, str) and "\x00" in value)


@FAST
@given(
    data=st.one_of(st.binary(max_size=400), CSVISH),
    block=st.integers(8, 128),
    limit=st.integers(4, 64),
    encoding=st.sampled_from([None, "utf-8", "cp1252", "utf-16"]),
)
def test_any_bytes_give_rows_rejects_or_a_file_error(tmp_path, data, block, limit, encoding):
    path = tmp_path / "any.csv"
    path.write_bytes(data)
    try:
        found = read_all(path, encoding=encoding, max_line_bytes=limit, block_bytes=block)
    except CsvFileError as exc:
        assert str(exc).startswith("any.csv: ")
        return
    if encoding != "utf-16":  # lines are counted in the UTF-8 copy
        check_rows(found, data.count(b"\n") + 1)


@FAST
@given(
    body=st.one_of(st.binary(max_size=400), CSVISH),
    block=st.integers(8, 128),
    limit=st.integers(8, 64),
)
def test_a_good_header_then_any_bytes_never_fails_the_file(tmp_path, body, block, limit):
    path = tmp_path / "body.csv"
    path.write_bytes(b"a,b,c\n" + body)
    found = read_all(path, max_line_bytes=limit, block_bytes=block)
    check_rows(found, body.count(b"\n") + 1)


@FAST
@given(
    table=st.integers(1, 4).flatmap(
        lambda width: st.lists(st.lists(VALUES, min_size=width, max_size=width), max_size=12)
    ),
    blanks=st.lists(st.booleans(), max_size=12),
    block=st.integers(8, 256),
)
def test_written_csv_reads_back_with_physical_line_numbers(tmp_path, table, blanks, block):
    width = len(table[0]) if table else 1
    text, expected = io.StringIO(), []
    writer = csv.writer(text)
    writer.writerow([f"c{n}" for n in range(width)])
    for n, values in enumerate(table):
        if n < len(blanks) and blanks[n]:
            text.write("\n")
        expected.append((text.getvalue().count("\n"), [v or None for v in values]))
        writer.writerow(values)
    path = tmp_path / "written.csv"
    path.write_bytes(text.getvalue().encode())
    found = read_all(path, block_bytes=block)
    assert [r["_reject_reason"] for r in found] == [None] * len(table)
    names = [f"c{n}" for n in range(width)]
    assert [(r["_line"], [r[c] for c in names]) for r in found] == expected


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (b"a,Name,b,name\n", "x.csv: duplicate header names: Name / name (columns 2 and 4)"),
        (b"a,_file\n", "x.csv: header names reserved for the pipeline: _file (column 2)"),
        (b"a,\x00b\n", "x.csv: not a CSV file: the header line: row holds a NUL byte"),
    ],
)
def test_file_errors_name_the_file_and_the_fault(tmp_path, header, error):
    path = tmp_path / "x.csv"
    path.write_bytes(header + b"1,2,3,4\n")
    with pytest.raises(CsvFileError) as raised:
        read_all(path)
    assert str(raised.value).startswith(error)


def test_a_cell_that_is_a_byte_order_mark_is_kept_at_the_start_of_a_block(tmp_path):
    # Found by the property above: Arrow drops a BOM at the start of whatever it parses, so a
    # block starting with that cell lost it (read as null); only the file's own BOM goes.
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"c0,c1\n" + codecs.BOM_UTF8 + b",x\n")
    found = read_all(path, block_bytes=8)
    assert [(r["_line"], r["c0"], r["c1"]) for r in found] == [(1, "\ufeff", "x")]
