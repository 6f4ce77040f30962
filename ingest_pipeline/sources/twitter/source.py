"""Twitter/X API v2 recent search: `GET /2/tweets/search/recent`.

`next_token` pagination; `since_id` from the instance's incremental cursor, so a run asks only
for tweets newer than the newest it has (the first run, without a cursor, sends none). Authors
come from `includes.users` of each page: the whole page is selected and a processing step
(`tweets_with_authors`) yields its tweets, each with its author. Read through dlt's rest_api
(`sources/platform_sources.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.rest_api.typing import Endpoint, IncrementalConfig, RESTAPIConfig

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.sources.platform_sources import (
    RawTable,
    bearer_client,
    next_cursor,
    platform_config,
    platform_resource,
)

TWEET_FIELDS = "created_at,lang,conversation_id,author_id"
TWEETS = RawTable("tweets", platform_id="id")

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "Tweets from X API v2 recent search with their authors from includes.users, one partition "
    "per tenant.instance."
)


def newest_id(ids: Any) -> Any:
    """Tweet ids are digit strings: compare them as numbers."""
    return max(ids, key=int)


# No cursor yet: `since_id` is None, which requests leaves out of the query.
SINCE_NEWEST: IncrementalConfig = {
    "cursor_path": "id",
    "initial_value": None,
    "last_value_func": newest_id,
    "start_param": "since_id",
}


def twitter_config(instance: SourceInstance) -> RESTAPIConfig:
    """The instance's search, newer than its newest tweet, as dlt's rest_api configuration."""
    options = instance.options
    endpoint: Endpoint = {
        "path": "2/tweets/search/recent",
        "params": {
            "query": options["query"],
            "max_results": options["page_size"],
            "tweet.fields": TWEET_FIELDS,
            "expansions": "author_id",
        },
        "paginator": next_cursor("meta.next_token", param="next_token"),
        "data_selector": "$",  # the whole page: its authors are beside its tweets
        "incremental": SINCE_NEWEST,
    }
    client = bearer_client(options)
    return platform_config(instance, TWEETS, client, endpoint, [{"yield_map": tweets_with_authors}])


def tweets_with_authors(page: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A search page's tweets, each with its author from the page's `includes.users`."""
    users = {user["id"]: user for user in (page.get("includes") or {}).get("users", [])}
    for tweet in page.get("data") or []:
        yield {**tweet, "author": users.get(tweet.get("author_id"))}


@dlt.source(name="twitter", max_table_nesting=0)
def twitter_source(instance: SourceInstance | None = None) -> Any:
    return platform_resource(TWEETS, twitter_config, instance)


RAW = RawLayer(TWEETS.name, twitter_source, RAW_DESCRIPTION)
