"""The feedback-platform sandboxes over real loopback HTTP: auth, tenants, pages, filters, 429s.

One server per platform for the module (stopping a server takes up to half a second); each test
registers its own accounts under fresh secrets, which also exercises tenant isolation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ingest_pipeline.sandbox.discourse import DiscourseSandbox, sample_posts
from ingest_pipeline.sandbox.intercom import IntercomSandbox, sample_conversations
from ingest_pipeline.sandbox.playstore import PlayStoreSandbox, sample_reviews
from ingest_pipeline.sandbox.server import Faults
from ingest_pipeline.sandbox.twitter import TwitterSandbox, sample_tweets

pytestmark = pytest.mark.integration

TIMEOUT = 5


def secret() -> str:
    return uuid.uuid4().hex


def _serve(sandbox: Any) -> Iterator[Any]:
    sandbox.server.start()
    yield sandbox
    sandbox.server.stop()


@pytest.fixture(scope="module")
def _play() -> Iterator[PlayStoreSandbox]:
    yield from _serve(PlayStoreSandbox())


@pytest.fixture(scope="module")
def _twitter() -> Iterator[TwitterSandbox]:
    yield from _serve(TwitterSandbox())


@pytest.fixture(scope="module")
def _discourse() -> Iterator[DiscourseSandbox]:
    yield from _serve(DiscourseSandbox())


@pytest.fixture(scope="module")
def _intercom() -> Iterator[IntercomSandbox]:
    yield from _serve(IntercomSandbox())


def _fresh(sandbox: Any) -> Iterator[Any]:
    sandbox.server.faults = Faults()
    yield sandbox
    sandbox.server.faults = Faults()


@pytest.fixture
def play(_play: PlayStoreSandbox) -> Iterator[PlayStoreSandbox]:
    yield from _fresh(_play)


@pytest.fixture
def twitter(_twitter: TwitterSandbox) -> Iterator[TwitterSandbox]:
    yield from _fresh(_twitter)


@pytest.fixture
def discourse(_discourse: DiscourseSandbox) -> Iterator[DiscourseSandbox]:
    _discourse.page_size = 20
    yield from _fresh(_discourse)


@pytest.fixture
def intercom(_intercom: IntercomSandbox) -> Iterator[IntercomSandbox]:
    yield from _fresh(_intercom)


# --- Google Play ---------------------------------------------------------------------------


def play_get(
    play: PlayStoreSandbox, bearer: str, package: str, prefix: str = "", **params: Any
) -> requests.Response:
    url = f"{play.server.url}{prefix}/androidpublisher/v3/applications/{package}/reviews"
    return requests.get(
        url, params=params, headers={"Authorization": f"Bearer {bearer}"}, timeout=TIMEOUT
    )


def play_all(play: PlayStoreSandbox, token: str, package: str, **params: Any) -> list[dict]:
    reviews, page_token = [], None
    while True:
        extra = {"token": page_token} if page_token else {}
        body = play_get(play, token, package, **params, **extra).json()
        reviews += body.get("reviews", [])
        page_token = body.get("tokenPagination", {}).get("nextPageToken")
        if not page_token:
            return reviews


def test_play_auth_and_permission(play: PlayStoreSandbox) -> None:
    token = secret()
    play.add_account(token, "com.acme.app", sample_reviews(2))
    unknown = play_get(play, "nope", "com.acme.app")
    assert unknown.status_code == 401
    assert unknown.json() == {
        "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials.",
            "status": "UNAUTHENTICATED",
        }
    }
    other = play_get(play, token, "com.other.app")
    assert other.status_code == 403
    assert other.json()["error"]["status"] == "PERMISSION_DENIED"


def test_play_pages_newest_first_with_prefix(play: PlayStoreSandbox) -> None:
    token = secret()
    play.add_account(token, "com.acme.app", sample_reviews(25))
    first = play_get(play, token, "com.acme.app", prefix="/t1")
    assert first.status_code == 200
    body = first.json()
    assert len(body["reviews"]) == 10
    assert body["tokenPagination"]["nextPageToken"]
    review = body["reviews"][0]
    comment = review["comments"][0]["userComment"]
    assert review["reviewId"].startswith("gp:")
    assert comment["lastModified"] == {"seconds": str(1767225600 + 25 * 3600), "nanos": 0}
    assert comment["starRating"] == 1 + 25 % 5

    reviews = play_all(play, token, "com.acme.app", maxResults=7)
    assert len(reviews) == 25
    seconds = [int(r["comments"][0]["userComment"]["lastModified"]["seconds"]) for r in reviews]
    assert seconds == sorted(seconds, reverse=True)
    assert len({r["reviewId"] for r in reviews}) == 25
    assert any(len(r["comments"]) == 2 for r in reviews)  # developer replies


def test_play_tenants_empty_and_edits(play: PlayStoreSandbox) -> None:
    a, b, empty = secret(), secret(), secret()
    play.add_account(a, "com.acme.app", sample_reviews(3))
    play.add_account(b, "com.acme.app", sample_reviews(2, start=100))
    play.add_account(empty, "com.acme.app", [])
    assert len(play_all(play, a, "com.acme.app")) == 3
    assert len(play_all(play, b, "com.acme.app")) == 2
    assert play_get(play, empty, "com.acme.app").json() == {}

    play.edit_review(a, "gp:AOqpTO0000000001", "changed my mind", 1800000000)
    newest = play_get(play, a, "com.acme.app").json()["reviews"][0]
    assert newest["reviewId"] == "gp:AOqpTO0000000001"
    assert newest["comments"][0]["userComment"]["text"] == "changed my mind"
    assert newest["comments"][0]["userComment"]["lastModified"]["seconds"] == "1800000000"


def test_play_rate_limit_and_bad_token(play: PlayStoreSandbox) -> None:
    token = secret()
    play.add_account(token, "com.acme.app", sample_reviews(1))
    play.server.faults.queue.append(429)
    play.server.faults.rate_limit_wait_seconds = 3
    limited = play_get(play, token, "com.acme.app")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert play_get(play, token, "com.acme.app").status_code == 200
    assert play_get(play, token, "com.acme.app", token="!!!").status_code == 400


# --- Twitter / X ---------------------------------------------------------------------------


def twitter_get(
    twitter: TwitterSandbox, token: str, prefix: str = "", **params: Any
) -> requests.Response:
    return requests.get(
        f"{twitter.server.url}{prefix}/2/tweets/search/recent",
        params={"query": "@acme", **params},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )


def test_twitter_auth_and_validation(twitter: TwitterSandbox) -> None:
    token = secret()
    twitter.add_account(token, *sample_tweets(3))
    unknown = twitter_get(twitter, "nope")
    assert unknown.status_code == 401
    assert unknown.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert twitter_get(twitter, token, query="").status_code == 400
    assert twitter_get(twitter, token, max_results=5).status_code == 400
    assert twitter_get(twitter, token, max_results=101).status_code == 400
    assert twitter_get(twitter, token, max_results=100).status_code == 200


def test_twitter_pages_since_id_and_includes(twitter: TwitterSandbox) -> None:
    token, other = secret(), secret()
    tweets, users = sample_tweets(25)
    twitter.add_account(token, tweets, users)
    twitter.add_account(other, *sample_tweets(2, start=500))

    first = twitter_get(twitter, token, prefix="/x", expansions="author_id").json()
    assert [t["id"] for t in first["data"]] == [
        str(1800000000000000000 + n) for n in range(25, 15, -1)
    ]
    assert first["meta"]["newest_id"] == first["data"][0]["id"]
    assert first["meta"]["oldest_id"] == first["data"][-1]["id"]
    assert first["meta"]["result_count"] == 10
    assert set(first["data"][0]) >= {
        "id",
        "text",
        "author_id",
        "created_at",
        "lang",
        "conversation_id",
    }
    assert first["data"][0]["created_at"].endswith("Z")
    assert {u["id"] for u in first["includes"]["users"]} == {t["author_id"] for t in first["data"]}

    seen, next_token = [], None
    while True:
        body = twitter_get(
            twitter, token, **({"next_token": next_token} if next_token else {})
        ).json()
        assert "includes" not in body
        seen += [t["id"] for t in body["data"]]
        next_token = body["meta"].get("next_token")
        if not next_token:
            break
    assert seen == sorted(seen, key=int, reverse=True)
    assert len(seen) == 25

    newer = twitter_get(twitter, token, since_id=seen[2]).json()
    assert [t["id"] for t in newer["data"]] == seen[:2]
    assert twitter_get(twitter, token, since_id=seen[0]).json() == {"meta": {"result_count": 0}}

    new_tweets, _ = sample_tweets(1, start=26)
    twitter.add_tweets(token, new_tweets)
    assert [t["id"] for t in twitter_get(twitter, token, since_id=seen[0]).json()["data"]] == [
        new_tweets[0]["id"]
    ]
    other_ids = [t["id"] for t in twitter_get(twitter, other).json()["data"]]
    assert other_ids == [str(1800000000000000000 + n) for n in (501, 500)]


def test_twitter_rate_limit_headers(twitter: TwitterSandbox) -> None:
    token = secret()
    twitter.add_account(token, *sample_tweets(1))
    twitter.server.faults.queue.append(429)
    twitter.server.faults.rate_limit_wait_seconds = 5
    limited = twitter_get(twitter, token)
    assert limited.status_code == 429
    assert limited.headers["x-rate-limit-limit"] == "450"
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert abs(int(limited.headers["x-rate-limit-reset"]) - (time.time() + 5)) < 3
    assert "Retry-After" not in limited.headers


# --- Discourse -----------------------------------------------------------------------------


def discourse_get(
    discourse: DiscourseSandbox, key: str, username: str, prefix: str = "", **params: Any
) -> requests.Response:
    return requests.get(
        f"{discourse.server.url}{prefix}/posts.json",
        params=params,
        headers={"Api-Key": key, "Api-Username": username},
        timeout=TIMEOUT,
    )


def test_discourse_auth(discourse: DiscourseSandbox) -> None:
    key = secret()
    discourse.add_account(key, "system", sample_posts(2))
    for bad_key, bad_user in [("nope", "system"), (key, "someone-else")]:
        denied = discourse_get(discourse, bad_key, bad_user)
        assert denied.status_code == 403
        assert denied.json()["error_type"] == "invalid_access"
    assert discourse_get(discourse, key, "system").status_code == 200


def test_discourse_before_pages_tenants_and_edits(discourse: DiscourseSandbox) -> None:
    key, other, empty = secret(), secret(), secret()
    discourse.page_size = 4
    discourse.add_account(key, "system", sample_posts(10))
    discourse.add_account(other, "bot", sample_posts(3, start=50))
    discourse.add_account(empty, "system", [])

    first = discourse_get(discourse, key, "system", prefix="/forum").json()["latest_posts"]
    assert [p["id"] for p in first] == [10, 9, 8, 7]
    assert first[0]["topic_id"] == 100 + 10 // 3
    assert first[0]["cooked"].startswith("<p>")
    assert first[0]["created_at"].endswith(".000Z")

    ids, before = [], None
    while True:
        page = discourse_get(
            discourse, key, "system", **({"before": before} if before else {})
        ).json()["latest_posts"]
        if not page:
            break
        ids += [p["id"] for p in page]
        before = page[-1]["id"]
    assert ids == list(range(10, 0, -1))

    assert [p["id"] for p in discourse_get(discourse, other, "bot").json()["latest_posts"]] == [
        52,
        51,
        50,
    ]
    assert discourse_get(discourse, empty, "system").json() == {"latest_posts": []}

    discourse.edit_post(key, 3, "Edited **text**", "2026-02-01T00:00:00.000Z")
    post = discourse_get(discourse, key, "system", before=4).json()["latest_posts"][0]
    assert (post["id"], post["raw"], post["updated_at"]) == (
        3,
        "Edited **text**",
        "2026-02-01T00:00:00.000Z",
    )


def test_discourse_rate_limit(discourse: DiscourseSandbox) -> None:
    key = secret()
    discourse.add_account(key, "system", sample_posts(1))
    discourse.server.faults.queue.append(429)
    limited = discourse_get(discourse, key, "system")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"


# --- Intercom ------------------------------------------------------------------------------


def intercom_search(
    intercom: IntercomSandbox,
    token: str,
    body: dict[str, Any],
    prefix: str = "",
    version: str | None = "2.11",
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if version:
        headers["Intercom-Version"] = version
    return requests.post(
        f"{intercom.server.url}{prefix}/conversations/search",
        json=body,
        headers=headers,
        timeout=TIMEOUT,
    )


def since(value: int, operator: str = ">") -> dict[str, Any]:
    return {"field": "updated_at", "operator": operator, "value": value}


def intercom_all(intercom: IntercomSandbox, token: str, body: dict[str, Any]) -> list[dict]:
    conversations, cursor = [], None
    while True:
        pagination = dict(body.get("pagination", {}))
        if cursor:
            pagination["starting_after"] = cursor
        answer = intercom_search(intercom, token, {**body, "pagination": pagination}).json()
        conversations += answer["conversations"]
        cursor = answer["pages"].get("next", {}).get("starting_after")
        if not cursor:
            return conversations


def test_intercom_auth_and_version(intercom: IntercomSandbox) -> None:
    token = secret()
    intercom.add_account(token, sample_conversations(2))
    unknown = intercom_search(intercom, "nope", {"query": since(0)})
    assert unknown.status_code == 401
    body = unknown.json()
    assert body["type"] == "error.list"
    assert body["errors"] == [{"code": "unauthorized", "message": "Access Token Invalid"}]
    assert body["request_id"]
    no_version = intercom_search(intercom, token, {"query": since(0)}, version=None)
    assert no_version.status_code == 400
    assert no_version.json()["errors"][0]["code"] == "intercom_version_invalid"
    bad_operator = intercom_search(intercom, token, {"query": since(0, "~")})
    assert bad_operator.status_code == 400


def test_intercom_pages_filters_sort(intercom: IntercomSandbox) -> None:
    token, other = secret(), secret()
    base = 1767225600
    intercom.add_account(token, sample_conversations(12, base_time=base))
    intercom.add_account(other, sample_conversations(1, start=99))

    body = {"query": since(base + 4 * 3600 + 600), "pagination": {"per_page": 3}}
    first = intercom_search(intercom, token, body, prefix="/eu").json()
    assert first["type"] == "conversation.list"
    assert first["total_count"] == 8  # conversations 5..12
    assert first["pages"]["page"] == 1
    assert first["pages"]["per_page"] == 3
    assert first["pages"]["total_pages"] == 3
    assert first["pages"]["next"]["page"] == 2
    assert [c["id"] for c in first["conversations"]] == ["100000005", "100000006", "100000007"]
    conversation = first["conversations"][0]
    assert conversation["source"]["author"]["type"] == "user"
    assert conversation["conversation_parts"]["total_count"] == 1

    everything = intercom_all(intercom, token, body)
    assert [int(c["id"]) - 100000000 for c in everything] == list(range(5, 13))

    descending = intercom_all(
        intercom, token, {**body, "sort": {"field": "updated_at", "order": "descending"}}
    )
    assert [c["id"] for c in descending] == [c["id"] for c in reversed(everything)]

    window = {
        "operator": "AND",
        "value": [since(base + 2 * 3600 + 600, ">="), since(base + 4 * 3600 + 600, "<")],
    }
    assert [c["id"] for c in intercom_all(intercom, token, {"query": window})] == [
        "100000002",
        "100000003",
    ]
    either = {
        "operator": "OR",
        "value": [
            since(base + 3600 + 600, "="),
            {"field": "created_at", "operator": "=", "value": base + 12 * 3600},
        ],
    }
    assert [c["id"] for c in intercom_all(intercom, token, {"query": either})] == [
        "100000001",
        "100000012",
    ]

    intercom.add_reply(token, "100000001", "<p>Following up</p>", base + 100 * 3600)
    newest = intercom_all(intercom, token, {"query": since(base + 50 * 3600)})
    assert [c["id"] for c in newest] == ["100000001"]
    assert newest[0]["conversation_parts"]["total_count"] == 2
    assert (
        newest[0]["conversation_parts"]["conversation_parts"][-1]["body"] == "<p>Following up</p>"
    )

    assert [c["id"] for c in intercom_all(intercom, other, {"query": since(0)})] == ["100000099"]
    empty = intercom_search(intercom, token, {"query": since(base * 2)}).json()
    assert empty["conversations"] == [] and empty["total_count"] == 0
    assert "next" not in empty["pages"]


def test_intercom_rate_limit_headers(intercom: IntercomSandbox) -> None:
    token = secret()
    intercom.add_account(token, sample_conversations(1))
    intercom.server.faults.every_nth_rate_limited = 2
    intercom.server.faults.rate_limit_wait_seconds = 10
    statuses = []
    for _ in range(4):
        answer = intercom_search(intercom, token, {"query": since(0)})
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.headers["X-RateLimit-Limit"] == "1000"
            assert answer.headers["X-RateLimit-Remaining"] == "0"
            assert abs(int(answer.headers["X-RateLimit-Reset"]) - (time.time() + 10)) < 3
    assert statuses.count(429) == 2


def test_a_held_api_keeps_requests_open_until_released() -> None:
    """`hold`: an API that hangs (the connection open, no answer); `release`: the held request
    gets the platform's usual answer, and the next ones too."""
    from concurrent.futures import ThreadPoolExecutor

    from ingest_pipeline.sandbox.catalog_api import CatalogApi

    api = CatalogApi("t0ken")
    api.server.start()
    try:
        api.server.hold()
        url, auth = f"{api.server.url}/api/products", {"Authorization": "Bearer t0ken"}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.get, url, headers=auth, timeout=30)
            deadline = time.monotonic() + 10
            while api.server.held < 1:
                assert time.monotonic() < deadline, "the request never arrived"
                time.sleep(0.05)
            time.sleep(0.3)
            assert not pending.done() and api.server.held == 1
            api.server.release()
            answer = pending.result(timeout=10)
        assert answer.status_code == 200 and len(answer.json()["data"]) == 2
        assert api.server.held == 0
        assert requests.get(url, headers=auth, timeout=TIMEOUT).status_code == 200
    finally:
        api.server.stop()
