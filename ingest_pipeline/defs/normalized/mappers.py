"""Per source type: how a raw row becomes the fields of a normalized item (before validation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ingest_pipeline.defs.sources.rest_api.source import RESOURCE_COLUMN
from ingest_pipeline.lib.tenants import SourceInstance

ItemMapper = Callable[[Mapping[str, Any], SourceInstance], dict[str, Any]]


def map_with(mapping: Mapping[str, str], row: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a `{target: source path}` mapping; `a.b` reads dlt's flattened column `a__b`."""
    return {target: row.get(path.replace(".", "__")) for target, path in mapping.items()}


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


ITEM_MAPPERS: dict[str, ItemMapper] = {
    "rest_api": map_rest_api_row,
    "csv": map_csv_row,
    "rss": map_rss_row,
}
