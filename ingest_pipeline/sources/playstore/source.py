"""Google Play reviews: `GET /androidpublisher/v3/applications/{packageName}/reviews`.

Token pagination (`tokenPagination.nextPageToken` → `token`). Reviews come newest-modified first
and the API has no "since" filter, so the incremental cursor on the review's last modification
runs with `row_order="desc"`: dlt stops paging once it reaches reviews it already has. The
cursor column `last_modified_seconds` is added by a processing step (`with_last_modified`),
which dlt runs before the incremental reads it. Read through dlt's rest_api
(`sources/platform_sources.py`).
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.sources.rest_api.typing import (
    Endpoint,
    IncrementalConfig,
    RESTAPIConfig,
)

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.sources.platform_sources import (
    RawTable,
    bearer_client,
    next_cursor,
    platform_config,
    platform_resource,
)

REVIEWS = RawTable("reviews", platform_id="reviewId")
# The API has no "since" filter: paging stops at the first review older than the cursor.
NEWEST_MODIFIED_FIRST: IncrementalConfig = {
    "cursor_path": "last_modified_seconds",
    "initial_value": 0,
    "row_order": "desc",
}

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "Google Play reviews as the Android Publisher API sent them (developer replies included), "
    "one partition per tenant.instance."
)


def playstore_config(instance: SourceInstance) -> RESTAPIConfig:
    """The instance's app reviews, newest-modified first, as dlt's rest_api configuration."""
    options = instance.options
    endpoint: Endpoint = {
        "path": f"androidpublisher/v3/applications/{options['package_name']}/reviews",
        "params": {"maxResults": options["page_size"]},
        "paginator": next_cursor("tokenPagination.nextPageToken", param="token"),
        "data_selector": "reviews",
        "incremental": NEWEST_MODIFIED_FIRST,
    }
    client = bearer_client(options)
    return platform_config(instance, REVIEWS, client, endpoint, [{"map": with_last_modified}])


def with_last_modified(review: dict[str, Any]) -> dict[str, Any]:
    """The review with `last_modified_seconds`: the newest modification of the review or its
    reply (either makes it changed)."""
    seconds = [
        int(comment[kind]["lastModified"]["seconds"])
        for comment in review.get("comments") or []
        for kind in ("userComment", "developerComment")
        if kind in comment
    ]
    return {**review, "last_modified_seconds": max(seconds, default=0)}


@dlt.source(name="playstore", max_table_nesting=0)
def playstore_source(instance: SourceInstance | None = None) -> Any:
    return platform_resource(REVIEWS, playstore_config, instance)


RAW = RawLayer(REVIEWS.name, playstore_source, RAW_DESCRIPTION)
