"""An `rss` raw entry → item fields: its guid (or link) is the external id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer


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


NORMALIZED = NormalizedLayer("items", map_rss_row)
