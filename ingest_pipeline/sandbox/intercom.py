"""Intercom `POST /conversations/search`: bearer auth, `Intercom-Version`, cursor pages.

The JSON body carries a query (`updated_at` / `created_at` compared with `>`, `>=`, `<`, `<=`,
`=`, `!=`, nested under `AND` / `OR`), `pagination.per_page` / `pagination.starting_after`
and a `sort`. Answers a `conversation.list` whose `pages.next.starting_after` is an opaque
cursor, omitted on the last page.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import threading
import time
import uuid
from typing import Any

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer, json_response

ROUTE = re.compile(r"/conversations/search/?$")
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 150
FIELDS = ("updated_at", "created_at")
OPERATORS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
CUSTOMERS = [
    ("6762f0a41bb69f9f2193bba1", "Ada Lovelace", "ada@example.com"),
    ("6762f0a41bb69f9f2193bba2", "Grace Hopper", "grace@example.com"),
    ("6762f0a41bb69f9f2193bba3", "Linus Torvalds", "linus@example.com"),
]
ADMIN = {"type": "admin", "id": "7123456", "name": "Support Bot"}


class QueryError(ValueError):
    """An invalid search query or pagination value."""


def intercom_rate_limit_headers(seconds: int) -> dict[str, str]:
    """Intercom answers 429 with `X-RateLimit-*` headers (reset is an epoch second)."""
    return {
        "X-RateLimit-Limit": "1000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(time.time()) + seconds),
    }


def error_list(status: int, code: str, message: str) -> Response:
    """Intercom's `error.list` body."""
    return json_response(
        status,
        {
            "type": "error.list",
            "request_id": uuid.uuid4().hex,
            "errors": [{"code": code, "message": message}],
        },
    )


def matches(conversation: dict[str, Any], query: dict[str, Any] | None) -> bool:
    """Whether a conversation satisfies a search query (no query matches everything)."""
    if not query:
        return True
    if not isinstance(query, dict):
        raise QueryError("query must be an object")
    operator = query.get("operator")
    if operator in ("AND", "OR"):
        parts = query.get("value")
        if not isinstance(parts, list) or not parts:
            raise QueryError(f"{operator} needs a list of queries as value")
        results = [matches(conversation, part) for part in parts]
        return all(results) if operator == "AND" else any(results)
    field = query.get("field")
    if field not in FIELDS:
        raise QueryError(f"unsupported field {field!r}")
    if operator not in OPERATORS:
        raise QueryError(f"unsupported operator {operator!r}")
    value = query.get("value")
    try:
        value = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise QueryError(f"{field} needs an integer value") from error
    return OPERATORS[operator](conversation[field], value)


def _encode_cursor(key: tuple[int, int], page: int) -> str:
    raw = json.dumps({"k": list(key), "p": page}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[tuple[int, int], int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return (int(raw["k"][0]), int(raw["k"][1])), int(raw["p"])
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise QueryError("starting_after is not a valid cursor") from error


class IntercomSandbox:
    """Several workspaces, each a bearer token with its own conversations."""

    def __init__(self, port: int = 0):
        self.accounts: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._part_ids = 0
        self.server = SandboxServer(
            self.handle, port, rate_limit_headers=intercom_rate_limit_headers
        )

    def add_account(self, token: str, conversations: list[dict[str, Any]]) -> IntercomSandbox:
        """Register (or replace) a workspace's conversations, readable with `token` only;
        returns the sandbox (a demo builds one in an expression)."""
        with self._lock:
            self.accounts[token] = conversations
        return self

    def add_conversations(self, token: str, conversations: list[dict[str, Any]]) -> None:
        """Append conversations to a workspace."""
        with self._lock:
            self.accounts[token].extend(conversations)

    def add_reply(self, token: str, conversation_id: str, body: str, at: int) -> None:
        """Append an admin comment to a conversation and bump its `updated_at` to `at`."""
        with self._lock:
            for conversation in self.accounts[token]:
                if conversation["id"] != conversation_id:
                    continue
                self._part_ids += 1
                parts = conversation["conversation_parts"]
                parts["conversation_parts"].append(
                    {
                        "type": "conversation_part",
                        "id": str(900000000 + self._part_ids),
                        "part_type": "comment",
                        "body": body,
                        "created_at": at,
                        "author": dict(ADMIN),
                    }
                )
                parts["total_count"] = len(parts["conversation_parts"])
                conversation["updated_at"] = at
                return
        raise KeyError(conversation_id)

    def handle(self, request: Request) -> Response:
        """Answer conversation search."""
        if ROUTE.search(request.path) is None or request.method != "POST":
            return error_list(404, "not_found", "Resource Not Found")
        with self._lock:
            conversations = self.accounts.get(request.bearer_token)
            if conversations is None:
                return error_list(401, "unauthorized", "Access Token Invalid")
            conversations = list(conversations)
        if not request.headers.get("intercom-version"):
            return error_list(
                400, "intercom_version_invalid", "Intercom-Version header is missing or invalid"
            )
        try:
            body = request.json() or {}
            if not isinstance(body, dict):
                raise QueryError("the body must be a JSON object")
            return self._search(conversations, body)
        except json.JSONDecodeError:
            return error_list(400, "parameter_invalid", "The request body is not valid JSON")
        except QueryError as error:
            return error_list(400, "parameter_invalid", str(error))

    def _search(self, conversations: list[dict[str, Any]], body: dict[str, Any]) -> Response:
        pagination = body.get("pagination") or {}
        sort = body.get("sort") or {}
        per_page = pagination.get("per_page", DEFAULT_PER_PAGE)
        if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
            raise QueryError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        sort_field = sort.get("field", "updated_at")
        if sort_field not in FIELDS:
            raise QueryError(f"cannot sort by {sort_field!r}")
        order = sort.get("order", "ascending")
        if order not in ("ascending", "descending"):
            raise QueryError("sort order must be ascending or descending")
        descending = order == "descending"

        def key(c: dict[str, Any]) -> tuple[int, int]:
            return (c[sort_field], int(c["id"]))

        matching = sorted(
            (c for c in conversations if matches(c, body.get("query"))),
            key=key,
            reverse=descending,
        )
        total = len(matching)
        page_number = 1
        remaining = matching
        cursor = pagination.get("starting_after")
        if cursor:
            after, page_number = _decode_cursor(cursor)
            remaining = [c for c in matching if (key(c) < after if descending else key(c) > after)]
        page = remaining[:per_page]
        pages: dict[str, Any] = {
            "type": "pages",
            "page": page_number,
            "per_page": per_page,
            "total_pages": math.ceil(total / per_page),
        }
        if len(remaining) > per_page:
            pages["next"] = {
                "page": page_number + 1,
                "starting_after": _encode_cursor(key(page[-1]), page_number + 1),
            }
        return json_response(
            200,
            {
                "type": "conversation.list",
                "conversations": page,
                "total_count": total,
                "pages": pages,
            },
        )


def sample_conversations(
    count: int, start: int = 1, base_time: int = 1767225600
) -> list[dict[str, Any]]:
    """`count` conversations; n opens at base_time + n*3600 and gets one reply 10 min later.

    Every other conversation is rated 1 + n % 5.
    """
    conversations = []
    for n in range(start, start + count):
        created = base_time + n * 3600
        replied = created + 600
        customer_id, name, email = CUSTOMERS[n % len(CUSTOMERS)]
        rating = 1 + n % 5
        conversations.append(
            {
                "type": "conversation",
                "id": str(100000000 + n),
                "created_at": created,
                "updated_at": replied,
                "title": None,
                "state": "open",
                "source": {
                    "type": "conversation",
                    "id": str(200000000 + n),
                    "delivered_as": "customer_initiated",
                    "subject": "",
                    "body": f"<p>Conversation {n}: the export "
                    + ("is great</p>" if rating > 3 else "keeps failing</p>"),
                    "author": {"type": "user", "id": customer_id, "name": name, "email": email},
                    "url": None,
                },
                "conversation_rating": (
                    {"rating": rating, "remark": f"Remark {n}", "created_at": replied + 60}
                    if n % 2 == 0
                    else None
                ),
                "conversation_parts": {
                    "type": "conversation_part.list",
                    "conversation_parts": [
                        {
                            "type": "conversation_part",
                            "id": str(300000000 + n),
                            "part_type": "comment",
                            "body": f"<p>Thanks for reaching out about {n}.</p>",
                            "created_at": replied,
                            "author": dict(ADMIN),
                        }
                    ],
                    "total_count": 1,
                },
            }
        )
    return conversations


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
DEMO_SECRET_ENV = "DEMO_INTERCOM_SECRET"


def demo_sandbox(port: int) -> IntercomSandbox:
    """A workspace with 12 conversations; a little weather: the first request answers 503."""
    sandbox = IntercomSandbox(port).add_account(
        os.environ[DEMO_SECRET_ENV], sample_conversations(12)
    )
    sandbox.server.faults.queue = [503]
    return sandbox


DEMO = sandbox_part(8086, demo_sandbox, {DEMO_SECRET_ENV: "demo-intercom-secret"})
