"""A Google Play raw review → feedback fields (the reviewer's comment; the reply stays in raw)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import as_json, dig, from_unix


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


NORMALIZED = NormalizedLayer("feedback", map_playstore_row)
