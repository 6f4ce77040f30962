"""The settings of an `intercom` instance (conversations search)."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import EVERY_15_MINUTES, EnvName, SourceOptions


class Options(SourceOptions):
    schedule: str = EVERY_15_MINUTES  # the type's default cron
    token_env: EnvName  # an access token of the workspace
    base_url: str = "https://api.intercom.io"
    api_version: str = "2.11"  # the Intercom-Version header
    page_size: int = Field(default=150, ge=1)  # pagination.per_page
