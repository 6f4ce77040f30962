"""Reading raw rows: what every source type's mapper (`sources/<type>/mapper.py`) builds on.

Raw rows are what dlt stored: flat columns (`a__b` for a nested field of a flattened dict) or,
for the platform sources (loaded with `max_table_nesting=0`), nested JSON values; `dig` reads both.

Mappers see a raw row with dlt's variant columns folded in (`fold_variants`): a value dlt could not
coerce to its column's inferred type sits in `<column>__v_<type>` with the base column null; the
mapper reads it under the base column's name, so it is validated like any other value (a garbled
timestamp is a reject naming its field), never read as a silent null.

Pure functions of their arguments: nothing here reads settings, the tenants file or a database.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import pyarrow as pa

    from ingest_pipeline.domain.tenants import SourceInstance

# A source type's mapper: a raw row of one instance → the fields of its normalized entity.
Mapper: TypeAlias = "Callable[[Mapping[str, Any], SourceInstance], dict[str, Any]]"
# The same for a batch of one instance's raw rows, as Arrow: {field: column}, or None when the
# batch is not for the bulk path (then each row goes through the Mapper).
BatchMapper: TypeAlias = (
    "Callable[[pa.Table, SourceInstance], Mapping[str, pa.ChunkedArray | pa.Array] | None]"
)
_TAG = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|li|h\d)>|<br\s*/?>", re.IGNORECASE)


# dlt's data types: a variant column is `<base>__v_<one of these>`.
_VARIANT_TYPES = frozenset(
    (
        "text",
        "double",
        "bool",
        "timestamp",
        "bigint",
        "binary",
        "json",
        "decimal",
        "wei",
        "date",
        "time",
    )
)


def variant_columns(columns: list[str]) -> dict[str, str]:
    """{variant column: its base column} of a raw table (a nested field `a__v_x` whose base `a`
    is no column is not a variant)."""
    found = {}
    for column in columns:
        base, sep, kind = column.rpartition("__v_")
        if sep and kind in _VARIANT_TYPES and base in columns:
            found[column] = base
    return found


def fold_variants(rows: list[dict[str, Any]], variants: Mapping[str, str]) -> None:
    """Move each non-null variant value into its base column, in place; drop the variants."""
    for row in rows:
        for variant, base in variants.items():
            value = row.pop(variant, None)
            if value is not None:
                row[base] = value


def dig(row: Mapping[str, Any], path: str) -> Any:
    """`a.b.c` from a raw row: a flattened column `a__b__c`, or into JSON values."""
    flat = path.replace(".", "__")
    if flat in row:
        return row[flat]
    value: Any = row
    for part in path.split("."):
        if isinstance(value, str) and value[:1] in "{[":
            value = json.loads(value)
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


def as_json(value: Any) -> Any:
    """A JSON column's value: DuckDB hands out text, PostgreSQL (jsonb) Python objects."""
    return json.loads(value) if isinstance(value, str) else value


def map_with(mapping: Mapping[str, str], row: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a `{target: source path}` mapping from the tenants file."""
    return {target: dig(row, path) for target, path in mapping.items()}


def map_columns_with(
    mapping: Mapping[str, str], batch: pa.Table
) -> dict[str, pa.ChunkedArray] | None:
    """`map_with` for a batch whose every source path is a column of its own (a flat path, or
    `a.b` flattened as `a__b`); None otherwise (`dig` would look into JSON values)."""
    columns = {target: path.replace(".", "__") for target, path in mapping.items()}
    if any(column not in batch.column_names for column in columns.values()):
        return None
    return {target: batch.column(column) for target, column in columns.items()}


def html_to_text(markup: str | None) -> str | None:
    """Plain text of a small HTML fragment (paragraphs become lines)."""
    if markup is None:
        return None
    text = html.unescape(_TAG.sub("", _BLOCK_END.sub("\n", markup)))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) or None


def from_unix(seconds: Any) -> datetime | None:
    return None if seconds in (None, "") else datetime.fromtimestamp(int(seconds), tz=UTC)
