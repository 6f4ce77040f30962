"""Twitter/X API v2 recent search: bearer auth, `since_id`, `meta.next_token` pagination.

`GET {prefix}/2/tweets/search/recent?query=&since_id=&max_results=&next_token=&expansions=`
answers one account's tweets, newest (largest id) first. The query is required but not
evaluated: an account's tweets are its search results.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer, json_response

ROUTE = re.compile(r"/2/tweets/search/recent/?$")
BASE_ID = 1800000000000000000
TWEET_FIELDS = ("id", "text", "author_id", "created_at", "lang", "conversation_id")
USERS = [
    {"id": "2244994945", "name": "Ada Lovelace", "username": "ada"},
    {"id": "783214", "name": "Grace Hopper", "username": "grace"},
    {"id": "6253282", "name": "Linus Torvalds", "username": "linus"},
]
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}


def twitter_rate_limit_headers(seconds: int) -> dict[str, str]:
    """X answers 429 with `x-rate-limit-*` headers (reset is an epoch second), no Retry-After."""
    return {
        "x-rate-limit-limit": "450",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(int(time.time()) + seconds),
    }


def invalid_request(parameter: str, value: str | None, message: str) -> Response:
    """X's 400 problem document for an invalid query parameter."""
    return json_response(
        400,
        {
            "errors": [
                {
                    "parameters": {parameter: [value] if value is not None else []},
                    "message": message,
                }
            ],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
    )


def _encode_token(last_id: int) -> str:
    return base64.b32encode(f"after:{last_id}".encode()).decode().rstrip("=").lower()


def _decode_token(token: str) -> int:
    raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
    prefix, last_id = raw.split(":", 1)
    if prefix != "after":
        raise ValueError(token)
    return int(last_id)


class TwitterSandbox:
    """Several accounts, each a bearer token with its own tweets and users."""

    def __init__(self, port: int = 0):
        self.tweets: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.server = SandboxServer(
            self.handle, port, rate_limit_headers=twitter_rate_limit_headers
        )

    def add_account(
        self, token: str, tweets: list[dict[str, Any]], users: list[dict[str, Any]]
    ) -> TwitterSandbox:
        """Register (or replace) an account's tweets and the users who wrote them;
        returns the sandbox (a demo builds one in an expression)."""
        with self._lock:
            self.tweets[token] = tweets
            self.users[token] = {u["id"]: u for u in users}
        return self

    def add_tweets(
        self, token: str, tweets: list[dict[str, Any]], users: list[dict[str, Any]] | None = None
    ) -> None:
        """Append tweets (and optionally their authors) to an account."""
        with self._lock:
            self.tweets[token].extend(tweets)
            self.users[token].update({u["id"]: u for u in users or []})

    def handle(self, request: Request) -> Response:
        """Answer recent search."""
        if ROUTE.search(request.path) is None or request.method != "GET":
            return json_response(
                404, {"title": "Not Found Error", "type": "about:blank", "status": 404}
            )
        token = request.bearer_token
        with self._lock:
            if token not in self.tweets:
                return json_response(401, UNAUTHORIZED)
            tweets = sorted(self.tweets[token], key=lambda t: int(t["id"]), reverse=True)
            users = dict(self.users[token])

        query = request.arg("query")
        if not query:
            return invalid_request("query", query, "The `query` query parameter can not be empty")
        raw_max = request.arg("max_results", "10") or ""
        try:
            max_results = int(raw_max)
        except ValueError:
            max_results = 0
        if not 10 <= max_results <= 100:
            return invalid_request(
                "max_results",
                raw_max,
                f"The `max_results` query parameter value [{raw_max}] is not between 10 and 100",
            )
        since_id = request.arg("since_id")
        next_token = request.arg("next_token")
        try:
            if since_id:
                tweets = [t for t in tweets if int(t["id"]) > int(since_id)]
            if next_token:
                before = _decode_token(next_token)
                tweets = [t for t in tweets if int(t["id"]) < before]
        except ValueError:
            name, value = ("next_token", next_token) if next_token else ("since_id", since_id)
            return invalid_request(
                name, value, f"The `{name}` query parameter value [{value}] is not valid"
            )

        page = [{k: t[k] for k in TWEET_FIELDS if k in t} for t in tweets[:max_results]]
        if not page:
            return json_response(200, {"meta": {"result_count": 0}})
        meta: dict[str, Any] = {
            "newest_id": page[0]["id"],
            "oldest_id": page[-1]["id"],
            "result_count": len(page),
        }
        if len(tweets) > max_results:
            meta["next_token"] = _encode_token(int(page[-1]["id"]))
        body: dict[str, Any] = {"data": page}
        if "author_id" in (request.arg("expansions", "") or "").split(","):
            author_ids = dict.fromkeys(t["author_id"] for t in page)
            body["includes"] = {"users": [users[a] for a in author_ids if a in users]}
        body["meta"] = meta
        return json_response(200, body)


def sample_tweets(count: int, start: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` tweets (id 1800000000000000000 + n, one a minute) by three users in turn."""
    base = datetime(2026, 1, 1, 10, tzinfo=UTC)
    tweets = []
    for n in range(start, start + count):
        tweet_id = str(BASE_ID + n)
        created = base + timedelta(minutes=n)
        tweets.append(
            {
                "id": tweet_id,
                "text": f"Tweet {n} about @acme: " + ("loving it" if n % 2 else "still broken"),
                "author_id": USERS[n % len(USERS)]["id"],
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "lang": "en",
                "conversation_id": tweet_id,
            }
        )
    return tweets, [dict(u) for u in USERS]


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
DEMO_SECRET_ENV = "DEMO_TWITTER_SECRET"


def demo_sandbox(port: int) -> TwitterSandbox:
    """X with 30 tweets; a little weather: every third request is rate-limited (dlt waits)."""
    sandbox = TwitterSandbox(port).add_account(os.environ[DEMO_SECRET_ENV], *sample_tweets(30))
    sandbox.server.faults.every_nth_rate_limited = 3
    return sandbox


DEMO = sandbox_part(8084, demo_sandbox, {DEMO_SECRET_ENV: "demo-twitter-secret"})
