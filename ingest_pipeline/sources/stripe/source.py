"""Stripe events: `GET /v1/events`, newest first, paged with `starting_after`.

Bearer auth with the account's secret key. The incremental cursor is the event's `created`
(unix seconds) sent as `created[gte]`; pages follow `starting_after=<id of the page's last
event>` while `has_more`. Raw keeps every event the account emits, `data` as JSON (Stripe keeps
events for 30 days only, so raw is the lasting record); `normalized/payments` picks the payment
events out of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import BaseReferencePaginator
from requests import Request, Response

from ingest_pipeline.domain.tenants import SourceInstance, resolve_secret
from ingest_pipeline.lib.dlt_pipelines import for_instance, instance_key
from ingest_pipeline.lib.platform_client import platform_client

DEFAULT_BASE_URL = "https://api.stripe.com"
PAGE_SIZE = 100  # Stripe's maximum `limit`


class StartingAfterPaginator(BaseReferencePaginator):
    """Stripe list paging: `starting_after=<id of the page's last object>` while `has_more`."""

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        page = response.json()
        objects = page.get("data") or []
        self._next_reference = objects[-1]["id"] if page.get("has_more") and objects else None

    def update_request(self, request: Request) -> None:
        request.params = {**(request.params or {}), "starting_after": self._next_reference}


@dlt.source(name="stripe", max_table_nesting=0)
def stripe_source(instance: SourceInstance | None = None) -> Any:
    return for_instance(events(instance), instance)


@dlt.resource(
    name="events",
    write_disposition="merge",
    primary_key=instance_key("id"),
)
def events(
    instance: SourceInstance | None,
    # An event without `created` still lands in raw (and is rejected, with its reason, when
    # normalized) instead of failing the whole load.
    created: dlt.sources.incremental[int] = dlt.sources.incremental(
        "created", initial_value=0, on_cursor_value_missing="include"
    ),
) -> Iterator[list[dict[str, Any]]]:
    if instance is None:
        return
    options = instance.options
    client = platform_client(
        options.get("base_url", DEFAULT_BASE_URL),
        auth=BearerTokenAuth(resolve_secret(options["api_key_env"])),
        paginator=StartingAfterPaginator(),
        data_selector="data",
    )
    params = {
        "limit": options.get("page_size", PAGE_SIZE),
        # `gte`, not `gt`: an event created in the cursor's own second after the previous run
        # read that second is not missed. The ones already loaded come again; dlt drops them by
        # their id (the incremental keeps the ids seen at the cursor) and merge would anyway.
        "created[gte]": created.last_value or 0,
    }
    yield from client.paginate("v1/events", params=params)
