"""Stripe events: `GET /v1/events`, newest first, paged with `starting_after`.

Bearer auth with the account's secret key. The incremental cursor is the event's `created`
(unix seconds) sent as `created[gte]`; pages follow `starting_after=<id of the page's last
event>` while `has_more`. Raw keeps every event the account emits, `data` as JSON (Stripe keeps
events for 30 days only, so raw is the lasting record); `normalized/payments` picks the payment
events out of it. Read through dlt's rest_api (`sources/platform_sources.py`), the paging as a
registered paginator.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.sources.rest_api.config_setup import register_paginator
from dlt.sources.rest_api.typing import Endpoint, IncrementalConfig, RESTAPIConfig
from requests import Response

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.sources.platform_sources import (
    QueryReferencePaginator,
    RawTable,
    bearer_client,
    platform_config,
    platform_resource,
)

EVENTS = RawTable("events", platform_id="id")
CREATED_SINCE: IncrementalConfig = {
    "cursor_path": "created",
    "initial_value": 0,
    # `gte`, not `gt`: an event created in the cursor's own second after the previous run read
    # that second is not missed. The ones already loaded come again; dlt drops them by their id
    # (the incremental keeps the ids seen at the cursor) and merge would anyway.
    "start_param": "created[gte]",
    # An event without `created` still lands in raw (and is rejected, with its reason, when
    # normalized) instead of failing the whole load.
    "on_cursor_value_missing": "include",
}

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "Stripe events from /v1/events (data kept as JSON), one partition per tenant.instance."
)


class StartingAfterPaginator(QueryReferencePaginator):
    """Stripe list paging: `starting_after=<id of the page's last object>` while `has_more`."""

    reference_param = "starting_after"

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        page = response.json()
        objects = page.get("data") or []
        self._next_reference = objects[-1]["id"] if page.get("has_more") and objects else None


register_paginator("stripe_starting_after", StartingAfterPaginator)


def stripe_config(instance: SourceInstance) -> RESTAPIConfig:
    """The account's events since the cursor's second, as dlt's rest_api configuration."""
    options = instance.options
    endpoint: Endpoint = {
        "path": "v1/events",
        "params": {"limit": options["page_size"]},
        "paginator": "stripe_starting_after",
        "data_selector": "data",
        "incremental": CREATED_SINCE,
    }
    client = bearer_client(options, secret_option="api_key_env")
    return platform_config(instance, EVENTS, client, endpoint)


@dlt.source(name="stripe", max_table_nesting=0)
def stripe_source(instance: SourceInstance | None = None) -> Any:
    return platform_resource(EVENTS, stripe_config, instance)


RAW = RawLayer(EVENTS.name, stripe_source, RAW_DESCRIPTION)
