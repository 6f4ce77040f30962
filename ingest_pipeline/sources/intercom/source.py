"""Intercom conversations: `POST /conversations/search` on `updated_at`.

The query asks for conversations updated after the instance's incremental cursor; pages follow
`pages.next.starting_after` (sent back in the body's `pagination.starting_after`).
A conversation with a new reply has a newer `updated_at`, so it is fetched and merged again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from ingest_pipeline.domain.tenants import SourceInstance, resolve_secret
from ingest_pipeline.lib.dlt_pipelines import for_instance, instance_key
from ingest_pipeline.lib.platform_client import platform_client

DEFAULT_BASE_URL = "https://api.intercom.io"
API_VERSION = "2.11"
PAGE_SIZE = 150


@dlt.source(name="intercom", max_table_nesting=0)
def intercom_source(instance: SourceInstance | None = None) -> Any:
    return for_instance(conversations(instance), instance)


@dlt.resource(
    name="conversations",
    write_disposition="merge",
    primary_key=instance_key("id"),
)
def conversations(
    instance: SourceInstance | None,
    updated_at: dlt.sources.incremental[int] = dlt.sources.incremental(
        "updated_at", initial_value=0
    ),
) -> Iterator[list[dict[str, Any]]]:
    if instance is None:
        return
    options = instance.options
    client = platform_client(
        options.get("base_url", DEFAULT_BASE_URL),
        headers={
            "Intercom-Version": options.get("api_version", API_VERSION),
            "Accept": "application/json",
        },
        auth=BearerTokenAuth(resolve_secret(options["token_env"])),
        paginator=JSONResponseCursorPaginator(
            cursor_path="pages.next.starting_after",
            cursor_body_path="pagination.starting_after",
        ),
        data_selector="conversations",
    )
    body = {
        # `>=`: conversations updated in the cursor's own second are read again (merged, not
        # duplicated), so none updated in that same second is missed.
        "query": {"field": "updated_at", "operator": ">=", "value": updated_at.last_value or 0},
        "pagination": {"per_page": options.get("page_size", PAGE_SIZE)},
        "sort": {"field": "updated_at", "order": "ascending"},
    }
    yield from client.paginate("conversations/search", method="POST", json=body)
