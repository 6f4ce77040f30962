"""Validating a batch of records at once, on Arrow, with the verdicts of the entity's validator.

`validate_in_bulk(table, fields)` takes an Arrow table of an entity's fields (what a mapper
gives, before validation) and settles in vectorized passes every row it can be sure of; the
others go to the record path (the entity's pydantic validator, one record at a time), which
gives a reject its precise reason. The rules it keeps:

- A row accepted here is exactly the record pydantic gives for it, typed as the table's Arrow
  schema holds it (a differential test runs both over a corpus of good and bad values). A check
  may be stricter than pydantic (a row it is unsure of only costs the record path), never looser.
- Text is what pydantic makes of it (`_VALIDATION`: stripped; blank means absent, as the mappers'
  `blank_to_none`): ASCII whitespace and Python's other ASCII separators (0x1c-0x1f) are stripped
  here; a value with any other whitespace at an end goes to the record path. Lengths count code
  points. A pattern is checked here only on ASCII text without control characters (where RE2 and
  pydantic's regex engine agree); other text goes to the record path.
- Timestamps given as text are settled here in the ISO 8601 forms `YYYY-MM-DD`, and that with
  `T` or a space and `HH:MM`, `HH:MM:SS` or `HH:MM:SS.ffffff`, then `Z`, `±HH:MM` or `±HHMM`
  (no offset: UTC, as the tables take a naive value), unstripped as pydantic reads them; a date that does not exist, a year before
  2 or after 9998 (pydantic's range check is then about the offset) and every other form (unix
  seconds, ...) go to the record path. Timestamps given typed are taken as they are (naive: UTC).
- A null is accepted where the field may be null; a required field that is null or absent, a
  column the entity does not have, and any non-null value of a kind not settled here (integers,
  floats, JSON, text given as another type, a constraint not listed above) go to the record path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from annotated_types import MaxLen, MinLen
from pydantic import AfterValidator
from pydantic.fields import FieldInfo
from typing_extensions import get_type_hints

from ingest_pipeline.domain.entities import Table, annotation_parts, storable

# What Python's str.strip() removes that is ASCII; the rest of its whitespace sends a value to
# the record path when it is at an end (after this strip).
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_OTHER_WHITESPACE = r"^[\x1c-\x1f\x85\pZ]$"  # matched on a value's first and last character
_CONTROL = r"[\x00-\x1f\x7f]"
_ISO = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)"
    r"(?::(?P<second>[0-5]\d)(?:\.(?P<fraction>\d{1,6}))?)?"
    r"(?P<offset>Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?$"
)
_EARLIEST = datetime(2, 1, 1)
_LATEST = datetime(9998, 12, 31, 23, 59, 59)
_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class FieldRule:
    """What the validator asks of one field, as far as it can be checked in bulk."""

    name: str
    kind: str  # the column's portable kind
    required: bool  # the key must be present
    nullable: bool
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    in_bulk: bool = True  # False: a constraint not settled here (non-null values: record path)


@dataclass(frozen=True)
class BulkVerdict:
    """`valid`: the accepted rows as the table's Arrow schema holds them; `valid_rows` and
    `record_rows`: the input's row numbers (int64) of those and of the rows for the record
    path."""

    valid: pa.Table
    valid_rows: pa.Array
    record_rows: pa.Array


def validate_in_bulk(table: Table, fields: pa.Table) -> BulkVerdict:
    rules = field_rules(table)
    n = fields.num_rows
    if set(fields.column_names) - rules.keys():  # pydantic forbids unknown fields
        return _all_to_record_path(table, n)
    columns, ok = [], pa.array([True] * n, pa.bool_())
    for field in table.arrow_schema:
        rule = rules[field.name]
        if field.name not in fields.column_names:
            if rule.required:
                return _all_to_record_path(table, n)
            columns.append(pa.nulls(n, field.type))
            continue
        column = fields.column(field.name).combine_chunks()
        values, settled = _check(rule, column, field.type)
        columns.append(values)
        ok = pc.and_(ok, settled)
    rows = pa.array(range(n), pa.int64())
    valid = pa.Table.from_arrays(columns, schema=table.arrow_schema).filter(ok)
    return BulkVerdict(valid, rows.filter(ok), rows.filter(pc.invert(ok)))


def _all_to_record_path(table: Table, n: int) -> BulkVerdict:
    return BulkVerdict(
        table.arrow_schema.empty_table(), pa.array([], pa.int64()), pa.array(range(n), pa.int64())
    )


@cache
def field_rules(table: Table) -> dict[str, FieldRule]:
    """Each field's rule, read from the row type's annotations (as `entity()` reads its kinds)."""
    hints = get_type_hints(table.row_type, include_extras=True)
    required_keys = table.row_type.__required_keys__
    kinds = {column.name: column.kind for column in table.columns}
    return {
        name: _rule(name, kinds[name], name in required_keys, hint) for name, hint in hints.items()
    }


def _rule(name: str, kind: str, required: bool, hint: Any) -> FieldRule:
    _, marks, nullable = annotation_parts(hint)
    constraints: dict[str, Any] = {}
    settled = [_read_mark(mark, constraints) for mark in marks]  # every mark read
    return FieldRule(name, kind, required, nullable, **constraints, in_bulk=all(settled))


def _read_mark(mark: Any, constraints: dict[str, Any]) -> bool:
    """Note a constraint in `constraints`; False if it cannot be checked in bulk."""
    if isinstance(mark, AfterValidator):
        return mark.func is storable  # the timestamp range: checked (more strictly) here
    if not isinstance(mark, FieldInfo):
        return True  # a mark of ours (Kind, lineage), no constraint
    settled = True
    for item in mark.metadata:
        if isinstance(item, MinLen):
            constraints["min_length"] = item.min_length
        elif isinstance(item, MaxLen):
            constraints["max_length"] = item.max_length
        elif getattr(item, "pattern", None) and len(vars(item)) == 1:
            constraints["pattern"] = item.pattern
        else:
            settled = False
    return settled


def _check(rule: FieldRule, column: pa.Array, stored: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """The column as stored, and for each row whether its value is settled valid here."""
    checked = None
    if column.null_count == len(column):
        checked = pa.nulls(len(column), stored), pa.array([True] * len(column), pa.bool_())
    elif rule.in_bulk and rule.kind == "text" and _is_text(column.type):
        checked = _text(rule, column.cast(pa.string()))
    elif rule.in_bulk and rule.kind == "timestamptz" and _is_text(column.type):
        checked = _timestamp_text(column.cast(pa.string()))
    elif rule.in_bulk and rule.kind == "timestamptz" and pa.types.is_timestamp(column.type):
        values = column.cast(_TIMESTAMP) if column.type.tz else _as_utc(column)
        checked = values, pc.or_(pc.is_null(values), _in_range(values))
    if checked is None:  # not settled in bulk: a value goes to the record path, a null does not
        checked = pa.nulls(len(column), stored), pc.is_null(column)
    values, settled = checked
    return values, _with_nulls(rule, values, settled)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _with_nulls(rule: FieldRule, values: pa.Array, settled: pa.Array) -> pa.Array:
    """Settled, and a null only where the field may be null."""
    present = pc.is_valid(values)
    allowed = present if not rule.nullable else pa.array([True] * len(values), pa.bool_())
    return pc.and_(pc.fill_null(settled, False), pc.or_(present, allowed))


def _strip(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Stripped, blank as null; and whether the strip is certainly Python's."""
    trimmed = pc.utf8_trim(column, characters=ASCII_WHITESPACE)
    # Each end's character alone: an anchored class on whole values made RE2 scan each to its end.
    ends = [pc.utf8_slice_codeunits(trimmed, 0, 1), pc.utf8_slice_codeunits(trimmed, -1)]
    odd = [pc.match_substring_regex(end, _OTHER_WHITESPACE) for end in ends]
    sure = pc.invert(pc.or_(*odd))
    return _nonempty(trimmed), pc.fill_null(sure, True)


def _text(rule: FieldRule, column: pa.Array) -> tuple[pa.Array, pa.Array]:
    values, settled = _strip(column)
    if rule.min_length is not None:
        settled = pc.and_(settled, pc.greater_equal(pc.utf8_length(values), rule.min_length))
    if rule.max_length is not None:
        settled = pc.and_(settled, pc.less_equal(pc.utf8_length(values), rule.max_length))
    if rule.pattern is not None:
        plain = pc.and_(
            pc.string_is_ascii(values), pc.invert(pc.match_substring_regex(values, _CONTROL))
        )
        settled = pc.and_(settled, pc.and_(plain, pc.match_substring_regex(values, rule.pattern)))
    # A null value is settled by the null rule alone.
    return values, pc.or_(pc.is_null(values), pc.fill_null(settled, False))


def _timestamp_text(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """ISO 8601 text (the module's forms) as UTC timestamps; other values null and not
    settled."""
    # Not stripped (pydantic strips text fields only); blank means absent all the same.
    blank = pc.equal(pc.utf8_trim(column, characters=ASCII_WHITESPACE), "")
    text = pc.if_else(blank, pa.scalar(None, pa.string()), column)
    parts = pc.extract_regex(text, _ISO)
    date, hour, minute, second, fraction, offset = (pc.struct_field(parts, [i]) for i in range(6))
    day = pc.strptime(date, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime takes 02-30 as 03-02: the day it read must be the day written.
    real_day = pc.equal(pc.day(day), pc.cast(pc.utf8_slice_codeunits(date, 8, 10), pa.int64()))
    joined = pc.binary_join_element_wise(
        date,
        pc.coalesce(_nonempty(hour), "00"),
        pc.coalesce(_nonempty(minute), "00"),
        pc.coalesce(_nonempty(second), "00"),
        _offset(offset),
        "|",
    )
    local = pc.strptime(joined, format="%Y-%m-%d|%H|%M|%S|%z", unit="us", error_is_null=True)
    micros = pc.cast(pc.utf8_rpad(pc.coalesce(_nonempty(fraction), "0"), 6, "0"), pa.int64())
    values = pc.add(local, pc.cast(micros, pa.duration("us"))).cast(_TIMESTAMP)
    settled = pc.and_(pc.fill_null(real_day, False), _in_range(values))
    values = pc.if_else(settled, values, pa.scalar(None, _TIMESTAMP))
    return values, pc.or_(pc.is_null(text), settled)


def _nonempty(part: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(part, ""), pa.scalar(None, pa.string()), part)


def _offset(offset: pa.Array) -> pa.Array:
    """`Z`, `±HH:MM`, `±HHMM` or none as `±HHMM` (none: UTC)."""
    offset = pc.replace_substring(pc.coalesce(_nonempty(offset), "Z"), ":", "")
    return pc.if_else(pc.equal(offset, "Z"), "+0000", offset)


def _as_utc(column: pa.Array) -> pa.Array:
    return pc.assume_timezone(column.cast(pa.timestamp("us")), "UTC")


def _in_range(values: pa.Array) -> pa.Array:
    earliest = pa.scalar(_EARLIEST, pa.timestamp("us")).cast(_TIMESTAMP)
    latest = pa.scalar(_LATEST, pa.timestamp("us")).cast(_TIMESTAMP)
    inside = pc.and_(pc.greater_equal(values, earliest), pc.less_equal(values, latest))
    return pc.fill_null(inside, False)
