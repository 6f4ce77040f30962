"""An Intercom conversation → feedback fields (the opening message and its rating).

Also used for conversations the intake received as webhooks (`defs/landing/loaders.py`),
which have no instance: the mapper reads nothing of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import dig, from_unix, html_to_text


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


NORMALIZED = NormalizedLayer("feedback", map_intercom_row)
