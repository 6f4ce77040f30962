"""A raw tweet (with its author from `includes.users`) → feedback fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import dig


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


NORMALIZED = NormalizedLayer("feedback", map_twitter_row)
