"""Discourse `posts.json`: `Api-Key` / `Api-Username` headers, `before` id pagination.

`GET {prefix}/posts.json?before=` answers one account's latest posts, newest (largest id)
first, `page_size` at a time; a client pages by passing the smallest id it saw as `before`.
"""

from __future__ import annotations

import html
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import (
    Request,
    Response,
    SandboxServer,
    json_response,
)

DEFAULT_PAGE_SIZE = 20
INVALID_ACCESS = {
    "errors": [
        "You are not permitted to view the requested resource. The API username or key is invalid."
    ],
    "error_type": "invalid_access",
}
USERS = [(1, "ada", "Ada Lovelace"), (2, "grace", "Grace Hopper"), (3, "linus", "Linus Torvalds")]


def cook(raw: str) -> str:
    """A stand-in for Discourse's markdown renderer: one escaped paragraph per block."""
    blocks = [b.strip() for b in raw.split("\n\n") if b.strip()]
    return "\n".join(f"<p>{html.escape(b)}</p>" for b in blocks)


class DiscourseSandbox:
    """Several accounts, each an (api key, api username) pair with its own posts."""

    def __init__(self, port: int = 0, page_size: int = DEFAULT_PAGE_SIZE):
        self.page_size = page_size
        self.accounts: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self.server = SandboxServer(self.handle, port)  # 429 with `Retry-After`, the default

    def add_account(
        self, api_key: str, api_username: str, posts: list[dict[str, Any]]
    ) -> DiscourseSandbox:
        """Register (or replace) an account's posts, readable with this key and username;
        returns the sandbox (a demo builds one in an expression)."""
        with self._lock:
            self.accounts[api_key] = (api_username, posts)
        return self

    def add_posts(self, api_key: str, posts: list[dict[str, Any]]) -> None:
        """Append posts to an account."""
        with self._lock:
            self.accounts[api_key][1].extend(posts)

    def edit_post(self, api_key: str, post_id: int, raw: str, updated_at: str) -> None:
        """Change a post's markdown (and its cooked HTML) and its `updated_at`."""
        with self._lock:
            for post in self.accounts[api_key][1]:
                if post["id"] == post_id:
                    post.update(raw=raw, cooked=cook(raw), updated_at=updated_at)
                    return
        raise KeyError(post_id)

    def handle(self, request: Request) -> Response:
        """Answer `posts.json`."""
        if not request.path.endswith("/posts.json") or request.method != "GET":
            return json_response(
                404,
                {
                    "errors": ["The requested URL or resource could not be found."],
                    "error_type": "not_found",
                },
            )
        api_key = request.headers.get("api-key")
        with self._lock:
            account = self.accounts.get(api_key or "")
            if account is None or account[0] != request.headers.get("api-username"):
                return json_response(403, INVALID_ACCESS)
            posts = sorted(account[1], key=lambda p: p["id"], reverse=True)
        before = request.arg("before")
        if before:
            try:
                limit = int(before)
            except ValueError:
                return json_response(
                    400,
                    {"errors": ["before must be an integer"], "error_type": "invalid_parameters"},
                )
            posts = [p for p in posts if p["id"] < limit]
        return json_response(200, {"latest_posts": posts[: self.page_size]})


def sample_posts(count: int, start: int = 1) -> list[dict[str, Any]]:
    """`count` posts (id n, topic 100 + n // 3, one an hour from 2026-01-01T10:00Z)."""
    base = datetime(2026, 1, 1, 10, tzinfo=UTC)
    posts = []
    for n in range(start, start + count):
        topic_id = 100 + n // 3
        user_id, username, name = USERS[n % len(USERS)]
        raw = f"Post {n} in topic {topic_id}.\n\nThe **export** " + (
            "works great." if n % 2 else "fails for me."
        )
        stamp = (base + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        posts.append(
            {
                "id": n,
                "topic_id": topic_id,
                "topic_slug": f"feedback-thread-{topic_id}",
                "topic_title": f"Feedback thread {topic_id}",
                "post_number": n % 3 + 1,
                "username": username,
                "name": name,
                "user_id": user_id,
                "raw": raw,
                "cooked": cook(raw),
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    return posts


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
DEMO_SECRET_ENV = "DEMO_DISCOURSE_SECRET"


def demo_sandbox(port: int) -> DiscourseSandbox:
    """A forum with 18 posts; the demo key acts as the user `system`."""
    return DiscourseSandbox(port).add_account(
        os.environ[DEMO_SECRET_ENV], "system", sample_posts(18)
    )


DEMO = sandbox_part(8085, demo_sandbox, {DEMO_SECRET_ENV: "demo-discourse-secret"})
