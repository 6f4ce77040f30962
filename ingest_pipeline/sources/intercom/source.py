"""Intercom conversations: `POST /conversations/search` on `updated_at`.

The query asks for conversations updated after the instance's incremental cursor; pages follow
`pages.next.starting_after` (sent back in the body's `pagination.starting_after`).
A conversation with a new reply has a newer `updated_at`, so it is fetched and merged again.
Read through dlt's rest_api (`sources/platform_sources.py`): the cursor goes into the JSON body as
the `{incremental.start_value}` placeholder, which keeps its type (a number).
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.sources.rest_api.typing import Endpoint, RESTAPIConfig

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.sources.platform_sources import (
    RawTable,
    bearer_client,
    next_cursor,
    platform_config,
    platform_resource,
)

CONVERSATIONS = RawTable("conversations", platform_id="id")

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "Intercom conversations from /conversations/search (parts included), one partition per "
    "tenant.instance."
)


def intercom_config(instance: SourceInstance) -> RESTAPIConfig:
    """Conversations updated since the cursor, oldest first, as dlt's rest_api configuration."""
    options = instance.options
    search = {
        # `>=`: conversations updated in the cursor's own second are read again (merged, not
        # duplicated), so none updated in that same second is missed.
        "query": {"field": "updated_at", "operator": ">=", "value": "{incremental.start_value}"},
        "pagination": {"per_page": options["page_size"]},
        "sort": {"field": "updated_at", "order": "ascending"},
    }
    endpoint: Endpoint = {
        "path": "conversations/search",
        "method": "POST",
        "json": search,
        # The next page's cursor goes back in the search body, not in the query.
        "paginator": next_cursor(
            "pages.next.starting_after", body_path="pagination.starting_after"
        ),
        "data_selector": "conversations",
        "incremental": {"cursor_path": "updated_at", "initial_value": 0},
    }
    client = bearer_client(options)
    client["headers"] = {"Intercom-Version": options["api_version"], "Accept": "application/json"}
    return platform_config(instance, CONVERSATIONS, client, endpoint)


@dlt.source(name="intercom", max_table_nesting=0)
def intercom_source(instance: SourceInstance | None = None) -> Any:
    return platform_resource(CONVERSATIONS, intercom_config, instance)


RAW = RawLayer(CONVERSATIONS.name, intercom_source, RAW_DESCRIPTION)
