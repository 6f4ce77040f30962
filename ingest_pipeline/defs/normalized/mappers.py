"""Per source type: how a raw row becomes the fields of its normalized entity (pre-validation).

Raw rows are what dlt stored: flat columns (`a__b` for a nested field of a flattened dict) or,
for the platform sources (loaded with `max_table_nesting=0`), nested JSON values; `dig` reads both.

Mappers see a raw row with dlt's variant columns folded in (`fold_variants`): a value dlt could not
coerce to its column's inferred type sits in `<column>__v_<type>` with the base column null; the
mapper reads it under the base column's name, so it is validated like any other value (a garbled
timestamp is a reject naming its field), never read as a silent null.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.sources.rest_api.source import RESOURCE_COLUMN

Mapper = Callable[[Mapping[str, Any], SourceInstance], dict[str, Any]]
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


def html_to_text(markup: str | None) -> str | None:
    """Plain text of a small HTML fragment (paragraphs become lines)."""
    if markup is None:
        return None
    text = html.unescape(_TAG.sub("", _BLOCK_END.sub("\n", markup)))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) or None


def from_unix(seconds: Any) -> datetime | None:
    return None if seconds in (None, "") else datetime.fromtimestamp(int(seconds), tz=UTC)


# --- items -------------------------------------------------------------------------------


def map_rest_api_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    for resource in instance.options.get("resources", []):
        if resource["name"] == row.get(RESOURCE_COLUMN):
            return map_with(resource.get("mapping") or {}, row)
    raise ValueError(f"resource {row.get(RESOURCE_COLUMN)!r} is no longer configured")


def map_csv_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    return map_with(instance.options.get("mapping") or {}, row)


def map_rss_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    external_id = row.get("id") or row.get("link")
    if not external_id:
        raise ValueError("feed entry has neither a guid/id nor a link")
    return {
        "external_id": external_id,
        "title": row.get("title"),
        "summary": row.get("summary"),
        "url": row.get("link"),
        "author": row.get("author"),
        "published_at": row.get("published_utc") or row.get("updated_utc"),
        "updated_at": row.get("updated_utc"),
    }


# --- feedback ----------------------------------------------------------------------------


def map_playstore_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    # One row per review; the developer's reply stays in raw. dlt stores top-level names in
    # snake_case (reviewId → review_id); inside JSON values the API's own names remain.
    comments = as_json(row.get("comments")) or []
    user = next((c["userComment"] for c in comments if "userComment" in c), None)
    if user is None:
        raise ValueError("review has no userComment")
    modified = from_unix(dig(user, "lastModified.seconds"))
    return {
        "external_id": row.get("review_id"),
        "thread_id": row.get("review_id"),
        "author_name": row.get("author_name"),
        "text": user.get("text"),
        "rating": user.get("starRating"),
        "language": user.get("reviewerLanguage"),
        "created_at": modified,
        "updated_at": modified,
    }


def map_twitter_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    username = dig(row, "author.username")
    return {
        "external_id": row.get("id"),
        "thread_id": row.get("conversation_id"),
        "author_id": row.get("author_id"),
        "author_name": username or dig(row, "author.name"),
        "text": row.get("text"),
        "language": row.get("lang"),
        "url": f"https://x.com/{username or 'i'}/status/{row.get('id')}",
        "created_at": row.get("created_at"),
        "updated_at": row.get("created_at"),
    }


def map_discourse_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    base = instance.options["base_url"].rstrip("/")
    return {
        "external_id": row.get("id"),
        "thread_id": row.get("topic_id"),
        "author_id": row.get("user_id"),
        "author_name": row.get("username"),
        "text": row.get("raw") or html_to_text(row.get("cooked")),
        "url": f"{base}/t/{row.get('topic_slug')}/{row.get('topic_id')}/{row.get('post_number')}",
        "created_at": row.get("created_at"),
        "updated_at": row.get("updated_at"),
    }


def map_intercom_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    # One row per conversation: the opening message and its rating; the parts stay in raw.
    return {
        "external_id": row.get("id"),
        "thread_id": row.get("id"),
        "author_id": dig(row, "source.author.id"),
        "author_name": dig(row, "source.author.name"),
        "text": html_to_text(dig(row, "source.body")),
        "rating": dig(row, "conversation_rating.rating"),
        "url": dig(row, "source.url"),
        "created_at": from_unix(row.get("created_at")),
        "updated_at": from_unix(row.get("updated_at")),
    }


MAPPERS: dict[str, Mapper] = {
    "rest_api": map_rest_api_row,
    "csv": map_csv_row,
    "rss": map_rss_row,
    "playstore": map_playstore_row,
    "twitter": map_twitter_row,
    "discourse": map_discourse_row,
    "intercom": map_intercom_row,
}
