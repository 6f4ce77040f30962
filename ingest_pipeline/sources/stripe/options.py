"""The settings of a `stripe` instance (the events API)."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import EVERY_15_MINUTES, EnvName, SourceOptions


class Options(SourceOptions):
    schedule: str = EVERY_15_MINUTES  # the type's default cron
    api_key_env: EnvName  # the account's secret key (sk_...)
    base_url: str = "https://api.stripe.com"
    page_size: int = Field(default=100, ge=1, le=100)  # `limit`: Stripe's maximum is 100
