"""Twitter/X API v2 recent search: `GET /2/tweets/search/recent`.

`next_token` pagination; `since_id` from the instance's incremental cursor, so a run asks only
for tweets newer than the newest it has. Authors come from `includes.users` of each page.
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

DEFAULT_BASE_URL = "https://api.x.com"
PAGE_SIZE = 100
TWEET_FIELDS = "created_at,lang,conversation_id,author_id"


def newest_id(ids: Any) -> Any:
    """Tweet ids are digit strings: compare them as numbers."""
    return max(ids, key=int)


@dlt.source(name="twitter", max_table_nesting=0)
def twitter_source(instance: SourceInstance | None = None) -> Any:
    return for_instance(tweets(instance), instance)


@dlt.resource(
    name="tweets",
    write_disposition="merge",
    primary_key=instance_key("id"),
)
def tweets(
    instance: SourceInstance | None,
    since: dlt.sources.incremental[str] = dlt.sources.incremental(
        "id", initial_value=None, last_value_func=newest_id
    ),
) -> Iterator[list[dict[str, Any]]]:
    if instance is None:
        return
    options = instance.options
    client = platform_client(
        options.get("base_url", DEFAULT_BASE_URL),
        auth=BearerTokenAuth(resolve_secret(options["token_env"])),
        paginator=JSONResponseCursorPaginator(
            cursor_path="meta.next_token", cursor_param="next_token"
        ),
        data_selector="data",
    )
    params = {
        "query": options["query"],
        "max_results": options.get("page_size", PAGE_SIZE),
        "tweet.fields": TWEET_FIELDS,
        "expansions": "author_id",
    }
    if since.last_value:
        params["since_id"] = since.last_value
    for page in client.paginate("2/tweets/search/recent", params=params):
        users = {u["id"]: u for u in (page.response.json().get("includes") or {}).get("users", [])}
        yield [{**tweet, "author": users.get(tweet.get("author_id"))} for tweet in page]
