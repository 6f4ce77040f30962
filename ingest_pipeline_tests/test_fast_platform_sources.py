"""Fast tier: the platform sources' rest_api configurations, built from instance options, their
row steps, paginators and the rate-limit hook (no server, no pipeline run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from dlt.sources.rest_api.config_setup import create_paginator
from requests import Request, Response

from ingest_pipeline.domain.tenants import MissingSecretError, SourceInstance
from ingest_pipeline.lib.platform_client import reset_to_retry_after
from ingest_pipeline.lib.source_types import options_model
from ingest_pipeline.sources.discourse.source import discourse_config, discourse_source
from ingest_pipeline.sources.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN
from ingest_pipeline.sources.intercom.source import intercom_config, intercom_source
from ingest_pipeline.sources.playstore.source import (
    playstore_config,
    playstore_source,
    with_last_modified,
)
from ingest_pipeline.sources.stripe.source import stripe_config, stripe_source
from ingest_pipeline.sources.twitter.source import (
    newest_id,
    tweets_with_authors,
    twitter_config,
    twitter_source,
)

SECRET_ENV = "TEST_PLATFORM_SECRET"
OPTIONS: dict[str, dict[str, Any]] = {
    "playstore": {"package_name": "com.acme.app", "token_env": SECRET_ENV},
    "twitter": {"query": "@acme", "token_env": SECRET_ENV},
    "discourse": {
        "base_url": "http://forum.test/acme",
        "api_key_env": SECRET_ENV,
        "api_username": "system",
    },
    "intercom": {"token_env": SECRET_ENV},
    "stripe": {"api_key_env": SECRET_ENV},
}
# source type: (config function, source function, raw table, platform id, default base URL)
PLATFORMS: dict[str, tuple[Callable[..., Any], Callable[..., Any], str, str, str]] = {
    "playstore": (
        playstore_config,
        playstore_source,
        "reviews",
        "reviewId",
        "https://androidpublisher.googleapis.com/",
    ),
    "twitter": (twitter_config, twitter_source, "tweets", "id", "https://api.x.com/"),
    "discourse": (discourse_config, discourse_source, "posts", "id", "http://forum.test/acme/"),
    "intercom": (
        intercom_config,
        intercom_source,
        "conversations",
        "id",
        "https://api.intercom.io/",
    ),
    "stripe": (stripe_config, stripe_source, "events", "id", "https://api.stripe.com/"),
}


def instance(source_type: str, **options: Any) -> SourceInstance:
    """An instance as the tenants file makes it: its options validated, defaults filled in."""
    given = options_model(source_type).model_validate({**OPTIONS[source_type], **options})
    return SourceInstance(tenant="acme", type=source_type, name="main", options=given.as_dict())


def endpoint_of(config: Any) -> dict[str, Any]:
    [resource] = config["resources"]
    return resource["endpoint"]


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s3cret")


@pytest.mark.parametrize("source_type", PLATFORMS)
def test_each_config_keeps_table_key_session_and_instance_columns(source_type: str) -> None:
    config_of, _, table, platform_id, base_url = PLATFORMS[source_type]
    config = config_of(instance(source_type))
    [resource] = config["resources"]
    assert resource["name"] == table
    assert resource["write_disposition"] == "merge"
    assert resource["primary_key"] == [TENANT_COLUMN, INSTANCE_COLUMN, platform_id]
    assert config["client"]["base_url"] == base_url
    # dlt's retrying session, with the hook that reads x-rate-limit-reset as Retry-After.
    assert reset_to_retry_after in config["client"]["session"].hooks["response"]
    add_instance = resource["processing_steps"][-1]["map"]
    assert add_instance({"x": 1}) == {"x": 1, TENANT_COLUMN: "acme", INSTANCE_COLUMN: "main"}


@pytest.mark.parametrize("source_type", PLATFORMS)
def test_the_secret_is_sent_as_the_platform_expects(source_type: str) -> None:
    client = PLATFORMS[source_type][0](instance(source_type))["client"]
    if source_type == "discourse":
        assert client["headers"] == {"Api-Key": "s3cret", "Api-Username": "system"}
    else:
        assert client["auth"] == {"type": "bearer", "token": "s3cret"}


@pytest.mark.parametrize("source_type", PLATFORMS)
def test_without_an_instance_the_source_has_its_table_and_reads_nothing(
    source_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)  # the definition-time spec reads no secret
    _, source_of, table, platform_id, _ = PLATFORMS[source_type]
    source = source_of()
    assert list(source.resources) == [table]
    assert source.max_table_nesting == 0
    resource = source.resources[table]
    schema = resource.compute_table_schema()
    assert (schema["name"], schema["write_disposition"]) == (table, "merge")
    key = [name for name, column in schema["columns"].items() if column.get("primary_key")]
    assert key == [TENANT_COLUMN, INSTANCE_COLUMN, platform_id]
    assert list(resource) == []


def test_a_missing_secret_fails_the_instance_when_its_config_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(MissingSecretError, match=SECRET_ENV):
        stripe_config(instance("stripe"))


def test_incremental_cursors_keep_each_platforms_rules() -> None:
    play = endpoint_of(playstore_config(instance("playstore", page_size=7)))
    assert play["path"] == "androidpublisher/v3/applications/com.acme.app/reviews"
    assert play["params"] == {"maxResults": 7}
    assert play["incremental"] == {
        "cursor_path": "last_modified_seconds",
        "initial_value": 0,
        "row_order": "desc",
    }
    tweets = endpoint_of(twitter_config(instance("twitter")))
    assert tweets["incremental"]["start_param"] == "since_id"
    assert tweets["incremental"]["last_value_func"] is newest_id
    assert newest_id(["9", "10", "8"]) == "10"  # ids compare as numbers
    posts = endpoint_of(discourse_config(instance("discourse")))
    assert posts["incremental"] == {
        "cursor_path": "id",
        "initial_value": 0,
        "row_order": "desc",
        "lag": 100,
    }
    lookback = endpoint_of(discourse_config(instance("discourse", edit_lookback_posts=5)))
    assert lookback["incremental"]["lag"] == 5
    search = endpoint_of(intercom_config(instance("intercom")))
    assert (search["method"], search["json"]["query"]["operator"]) == ("POST", ">=")
    assert search["json"]["query"]["value"] == "{incremental.start_value}"
    events = endpoint_of(stripe_config(instance("stripe")))
    assert events["params"] == {"limit": 100}
    assert events["incremental"]["start_param"] == "created[gte]"
    assert events["incremental"]["on_cursor_value_missing"] == "include"


def test_intercom_sends_its_api_version() -> None:
    client = intercom_config(instance("intercom", api_version="2.12"))["client"]
    assert client["headers"] == {"Intercom-Version": "2.12", "Accept": "application/json"}


def test_a_review_is_as_new_as_its_newest_comment_or_reply() -> None:
    review = {
        "reviewId": "r1",
        "comments": [
            {"userComment": {"lastModified": {"seconds": "100"}}},
            {"developerComment": {"lastModified": {"seconds": "250"}}},
        ],
    }
    assert with_last_modified(review) == {**review, "last_modified_seconds": 250}
    assert with_last_modified({"reviewId": "r2"})["last_modified_seconds"] == 0


def test_tweets_get_their_author_from_the_page_includes() -> None:
    page = {
        "data": [{"id": "2", "author_id": "u1"}, {"id": "3", "author_id": "u9"}],
        "includes": {"users": [{"id": "u1", "username": "ann"}]},
        "meta": {"next_token": "t"},
    }
    assert list(tweets_with_authors(page)) == [
        {"id": "2", "author_id": "u1", "author": {"id": "u1", "username": "ann"}},
        {"id": "3", "author_id": "u9", "author": None},
    ]
    assert list(tweets_with_authors({"meta": {"result_count": 0}})) == []


def _response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    response = Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers)
    return response


def test_registered_paginators_send_the_next_reference_while_there_is_one() -> None:
    before_id = create_paginator("discourse_before_id")
    before_id.update_state(_response({}), data=[{"id": 9}, {"id": 7}])
    request = Request("GET", "http://forum.test/posts.json", params={"x": "1"})
    before_id.update_request(request)
    assert request.params == {"x": "1", "before": "7"}
    before_id.update_state(_response({}), data=[])
    assert not before_id.has_next_page

    starting_after = create_paginator("stripe_starting_after")
    page = {"data": [{"id": "evt_2"}, {"id": "evt_1"}], "has_more": True}
    starting_after.update_state(_response(page))
    request = Request("GET", "http://stripe.test/v1/events", params={"limit": 2})
    starting_after.update_request(request)
    assert request.params == {"limit": 2, "starting_after": "evt_1"}
    starting_after.update_state(_response({**page, "has_more": False}))
    assert not starting_after.has_next_page


def test_a_rate_limit_reset_becomes_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: 1_000.0)
    limited = reset_to_retry_after(_response({}, 429, **{"x-rate-limit-reset": "1030"}))
    assert limited.headers["Retry-After"] == "30"
    stated = reset_to_retry_after(
        _response({}, 429, **{"Retry-After": "5", "x-rate-limit-reset": "2000"})
    )
    assert stated.headers["Retry-After"] == "5"
    assert (
        "Retry-After"
        not in reset_to_retry_after(_response({}, 500, **{"x-rate-limit-reset": "1030"})).headers
    )
