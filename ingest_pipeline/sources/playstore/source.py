"""Google Play reviews: `GET /androidpublisher/v3/applications/{packageName}/reviews`.

Token pagination (`tokenPagination.nextPageToken` → `token`). Reviews come newest-modified first
and the API has no "since" filter, so the incremental cursor on the review's last modification
runs with `row_order="desc"`: dlt stops paging once it reaches reviews it already has.
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

DEFAULT_BASE_URL = "https://androidpublisher.googleapis.com"
PAGE_SIZE = 100


@dlt.source(name="playstore", max_table_nesting=0)
def playstore_source(instance: SourceInstance | None = None) -> Any:
    return for_instance(reviews(instance), instance)


@dlt.resource(
    name="reviews",
    write_disposition="merge",
    primary_key=instance_key("reviewId"),
)
def reviews(
    instance: SourceInstance | None,
    last_modified: dlt.sources.incremental[int] = dlt.sources.incremental(
        "last_modified_seconds", initial_value=0, row_order="desc"
    ),
) -> Iterator[list[dict[str, Any]]]:
    if instance is None:
        return
    options = instance.options
    client = platform_client(
        options.get("base_url", DEFAULT_BASE_URL),
        auth=BearerTokenAuth(resolve_secret(options["token_env"])),
        paginator=JSONResponseCursorPaginator(
            cursor_path="tokenPagination.nextPageToken", cursor_param="token"
        ),
        data_selector="reviews",
    )
    path = f"androidpublisher/v3/applications/{options['package_name']}/reviews"
    for page in client.paginate(path, params={"maxResults": options.get("page_size", PAGE_SIZE)}):
        yield [{**review, "last_modified_seconds": _last_modified(review)} for review in page]


def _last_modified(review: dict[str, Any]) -> int:
    """The newest modification of the review or its reply (either makes it changed)."""
    seconds = [
        int(comment[kind]["lastModified"]["seconds"])
        for comment in review.get("comments") or []
        for kind in ("userComment", "developerComment")
        if kind in comment
    ]
    return max(seconds, default=0)
