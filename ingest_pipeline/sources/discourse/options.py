"""The settings of a `discourse` instance (a forum's `/posts.json`)."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import EVERY_15_MINUTES, EnvName, SourceOptions


class Options(SourceOptions):
    schedule: str = EVERY_15_MINUTES  # the type's default cron
    base_url: str = Field(min_length=1)  # the forum, e.g. https://forum.example.com
    api_key_env: EnvName  # an API key (Api-Key header)
    api_username: str = Field(min_length=1)  # the user the key acts as (Api-Username header)
    # Post ids read again on every run, so recent edits land.
    edit_lookback_posts: int = Field(default=100, ge=0)
    # Accepted for the same shape as the other platforms; /posts.json pages are the forum's size.
    page_size: int | None = Field(default=None, ge=1)
