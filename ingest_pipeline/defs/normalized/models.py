"""The normalized shapes, validated with pydantic. What fails here goes to the rejects table."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

HTTP_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)


def to_utc(value: datetime | None) -> datetime | None:
    """Timezone-aware UTC; a timestamp without a zone is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class NormalizedRecord(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True, extra="forbid")

    tenant_id: str
    source_type: str
    source_instance: str
    external_id: str = Field(min_length=1)
    raw_load_id: str
    ingested_at: datetime


class Item(NormalizedRecord):
    title: str | None = None
    summary: str | None = None
    url: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("published_at", "updated_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return to_utc(value)

    @field_validator("url", mode="after")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        # A compiled regex: urllib's urlsplit was a third of the validation time per row.
        if not HTTP_URL.match(value):
            raise ValueError(f"not an http(s) URL: {value[:200]!r}")
        return value

    @field_validator("title", "summary", "author", mode="after")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None
