"""Discourse latest posts: `GET /posts.json`, paged backwards with `before` (a post id).

`Api-Key` / `Api-Username` headers. Posts come newest first; the incremental cursor on the post
id runs with `row_order="desc"` so paging stops at posts already loaded, with a `lag` of
`edit_lookback_posts` ids (default 100) so recent posts are read again and their edits land.
Read through dlt's rest_api (`sources/platform_sources.py`), the paging as a registered paginator.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.sources.rest_api.config_setup import register_paginator
from dlt.sources.rest_api.typing import ClientConfig, Endpoint, IncrementalConfig, RESTAPIConfig
from requests import Response

from ingest_pipeline.domain.tenants import SourceInstance, resolve_secret
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.sources.platform_sources import (
    QueryReferencePaginator,
    RawTable,
    platform_config,
    platform_resource,
)

POSTS = RawTable("posts", platform_id="id")

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = "Discourse posts from /posts.json, one partition per tenant.instance."


class BeforeIdPaginator(QueryReferencePaginator):
    """Discourse's `before=<lowest id of the last page>` paging; an empty page ends it."""

    reference_param = "before"

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        # `data`: the page's `latest_posts`, already selected from the parsed body by dlt.
        self._next_reference = str(min(p["id"] for p in data)) if data else None


register_paginator("discourse_before_id", BeforeIdPaginator)


def discourse_config(instance: SourceInstance) -> RESTAPIConfig:
    """The forum's latest posts, newest first, as dlt's rest_api configuration."""
    options = instance.options
    newest_first: IncrementalConfig = {
        "cursor_path": "id",
        "initial_value": 0,
        "row_order": "desc",
        "lag": options["edit_lookback_posts"],
    }
    client: ClientConfig = {
        "base_url": options["base_url"],
        "headers": {
            "Api-Key": resolve_secret(options["api_key_env"]),
            "Api-Username": options["api_username"],
        },
    }
    endpoint: Endpoint = {
        "path": "posts.json",
        "paginator": "discourse_before_id",
        "data_selector": "latest_posts",
        "incremental": newest_first,
    }
    return platform_config(instance, POSTS, client, endpoint)


@dlt.source(name="discourse", max_table_nesting=0)
def discourse_source(instance: SourceInstance | None = None) -> Any:
    return platform_resource(POSTS, discourse_config, instance)


RAW = RawLayer(POSTS.name, discourse_source, RAW_DESCRIPTION)
