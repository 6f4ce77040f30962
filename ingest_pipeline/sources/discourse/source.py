"""Discourse latest posts: `GET /posts.json`, paged backwards with `before` (a post id).

`Api-Key` / `Api-Username` headers. Posts come newest first; the incremental cursor on the post
id runs with `row_order="desc"` so paging stops at posts already loaded, with a `lag` of
`edit_lookback_posts` ids (default 100) so recent posts are read again and their edits land.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.paginators import BaseReferencePaginator
from requests import Request, Response

from ingest_pipeline.domain.tenants import SourceInstance, resolve_secret
from ingest_pipeline.lib.dlt_pipelines import for_instance, instance_key
from ingest_pipeline.lib.platform_client import platform_client

EDIT_LOOKBACK_POSTS = 100


class BeforeIdPaginator(BaseReferencePaginator):
    """Discourse's `before=<lowest id of the last page>` paging; an empty page ends it."""

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        # `data`: the page's `latest_posts`, already selected from the parsed body by dlt.
        self._next_reference = str(min(p["id"] for p in data)) if data else None

    def update_request(self, request: Request) -> None:
        request.params = {**(request.params or {}), "before": self._next_reference}


@dlt.source(name="discourse", max_table_nesting=0)
def discourse_source(instance: SourceInstance | None = None) -> Any:
    if instance is None:
        return posts(None)
    lookback = instance.options.get("edit_lookback_posts", EDIT_LOOKBACK_POSTS)
    resource = posts(
        instance,
        dlt.sources.incremental("id", initial_value=0, row_order="desc", lag=lookback),
    )
    return for_instance(resource, instance)


@dlt.resource(
    name="posts",
    write_disposition="merge",
    primary_key=instance_key("id"),
)
def posts(
    instance: SourceInstance | None,
    post_id: dlt.sources.incremental[int] = dlt.sources.incremental(
        "id", initial_value=0, row_order="desc"
    ),
) -> Iterator[list[dict[str, Any]]]:
    if instance is None:
        return
    options = instance.options
    client = platform_client(
        options["base_url"],
        headers={
            "Api-Key": resolve_secret(options["api_key_env"]),
            "Api-Username": options["api_username"],
        },
        paginator=BeforeIdPaginator(),
        data_selector="latest_posts",
    )
    yield from client.paginate("posts.json")
