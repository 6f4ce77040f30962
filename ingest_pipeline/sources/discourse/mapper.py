"""A raw Discourse post → feedback fields; its URL is built on the instance's `base_url`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import html_to_text


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


NORMALIZED = NormalizedLayer("feedback", map_discourse_row)
