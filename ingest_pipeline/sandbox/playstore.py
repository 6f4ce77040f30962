"""Google Play Developer API: `reviews.list` with bearer auth and `tokenPagination`.

`GET {prefix}/androidpublisher/v3/applications/{packageName}/reviews?maxResults=&token=`
answers the reviews of one account's app, newest `lastModified` first, with an opaque
`tokenPagination.nextPageToken` while more remain (an empty result is `{}`, as on Play).
"""

from __future__ import annotations

import base64
import os
import re
import threading
from typing import Any

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer, json_response

DEFAULT_MAX_RESULTS = 10
ROUTE = re.compile(r"/androidpublisher/v3/applications/([^/]+)/reviews/?$")
DEVICES = ["a54x", "oriole", "beyond1", "OnePlus9", "starlte"]
LANGUAGES = ["en", "de", "fr", "es", "it"]


def google_error(status: int, message: str, reason: str) -> Response:
    """A Google API error body: `{"error": {"code", "message", "status"}}`."""
    return json_response(status, {"error": {"code": status, "message": message, "status": reason}})


def _last_modified(review: dict[str, Any]) -> int:
    for comment in review.get("comments", []):
        if "userComment" in comment:
            return int(comment["userComment"]["lastModified"]["seconds"])
    return 0


def _sort_key(review: dict[str, Any]) -> tuple[int, str]:
    return (-_last_modified(review), review["reviewId"])


def _encode_token(key: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}|{key[1]}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, str]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    negated, review_id = raw.split("|", 1)
    return int(negated), review_id


class PlayStoreSandbox:
    """Several accounts, each a bearer token owning the reviews of one or more packages."""

    def __init__(self, port: int = 0):
        self.accounts: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        # Play answers quota errors with a plain `Retry-After` (the server's default).
        self.server = SandboxServer(self.handle, port)

    def add_account(
        self, token: str, package_name: str, reviews: list[dict[str, Any]]
    ) -> PlayStoreSandbox:
        """Register (or replace) the reviews of `package_name`, readable with `token` only;
        returns the sandbox (a demo builds one in an expression)."""
        with self._lock:
            self.accounts.setdefault(token, {})[package_name] = reviews
        return self

    def add_reviews(self, token: str, package_name: str, reviews: list[dict[str, Any]]) -> None:
        """Append reviews to an account's package."""
        with self._lock:
            self.accounts[token][package_name].extend(reviews)

    def edit_review(self, token: str, review_id: str, text: str, seconds: int) -> None:
        """Change a review's user comment text and its `lastModified`."""
        with self._lock:
            for reviews in self.accounts[token].values():
                for review in reviews:
                    if review["reviewId"] != review_id:
                        continue
                    for comment in review["comments"]:
                        if "userComment" in comment:
                            comment["userComment"]["text"] = text
                            comment["userComment"]["lastModified"] = {
                                "seconds": str(seconds),
                                "nanos": 0,
                            }
                    return
        raise KeyError(review_id)

    def handle(self, request: Request) -> Response:
        """Answer `reviews.list`."""
        match = ROUTE.search(request.path)
        if match is None or request.method != "GET":
            return google_error(404, "Requested entity was not found.", "NOT_FOUND")
        with self._lock:
            packages = self.accounts.get(request.bearer_token)
            if packages is None:
                return google_error(
                    401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
                )
            reviews = packages.get(match.group(1))
            if reviews is None:
                return google_error(
                    403,
                    "The caller does not have permission to access this application.",
                    "PERMISSION_DENIED",
                )
            ordered = sorted(reviews, key=_sort_key)
        try:
            max_results = int(request.arg("maxResults", str(DEFAULT_MAX_RESULTS)) or "")
            if max_results < 1:
                raise ValueError
            page_token = request.arg("token")
            after = _decode_token(page_token) if page_token else None
        except (ValueError, UnicodeDecodeError):
            return google_error(400, "Request contains an invalid argument.", "INVALID_ARGUMENT")
        if after is not None:
            ordered = [r for r in ordered if _sort_key(r) > after]
        page = ordered[:max_results]
        if not page:
            return json_response(200, {})
        body: dict[str, Any] = {"reviews": page}
        if len(ordered) > max_results:
            body["tokenPagination"] = {"nextPageToken": _encode_token(_sort_key(page[-1]))}
        return json_response(200, body)


def sample_reviews(
    count: int, start: int = 1, base_seconds: int = 1767225600
) -> list[dict[str, Any]]:
    """`count` reviews; review n is modified at base_seconds + n*3600 and rates 1 + n % 5.

    Every third review carries a developer reply.
    """
    reviews = []
    for n in range(start, start + count):
        seconds = base_seconds + n * 3600
        rating = 1 + n % 5
        comments: list[dict[str, Any]] = [
            {
                "userComment": {
                    "text": f"Review {n}: {rating} stars, " + ("love it" if rating > 3 else "meh"),
                    "lastModified": {"seconds": str(seconds), "nanos": 0},
                    "starRating": rating,
                    "reviewerLanguage": LANGUAGES[n % len(LANGUAGES)],
                    "device": DEVICES[n % len(DEVICES)],
                    "androidOsVersion": 30 + n % 5,
                    "appVersionCode": 120,
                    "appVersionName": "1.2.0",
                    "thumbsUpCount": n % 4,
                    "thumbsDownCount": 0,
                }
            }
        ]
        if n % 3 == 0:
            comments.append(
                {
                    "developerComment": {
                        "text": f"Thanks for review {n}!",
                        "lastModified": {"seconds": str(seconds + 1800), "nanos": 0},
                    }
                }
            )
        reviews.append(
            {"reviewId": f"gp:AOqpTO{n:010d}", "authorName": f"Reviewer {n}", "comments": comments}
        )
    return reviews


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
DEMO_SECRET_ENV = "DEMO_PLAYSTORE_SECRET"
DEMO_PACKAGE = "com.initech.app"  # the package tenants.example.yaml names


def demo_sandbox(port: int) -> PlayStoreSandbox:
    """Google Play with 25 reviews of the demo tenant's app."""
    return PlayStoreSandbox(port).add_account(
        os.environ[DEMO_SECRET_ENV], DEMO_PACKAGE, sample_reviews(25)
    )


DEMO = sandbox_part(8083, demo_sandbox, {DEMO_SECRET_ENV: "demo-playstore-secret"})
