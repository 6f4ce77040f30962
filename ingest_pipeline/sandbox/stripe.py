"""Stripe `GET /v1/events`: secret-key auth, newest first, `starting_after` cursor pages.

Each secret key (`Authorization: Bearer sk_...`, or HTTP basic with the key as user name) is one
account and sees only its own events. Query: `limit` (1..100, default 10), `starting_after` /
`ending_before` (an event id), `created` (exact, or `created[gt|gte|lt|lte]`), `type` (`*` is a
wildcard, `charge.*`) and `types[]`. Answers Stripe's list object
`{"object": "list", "url": "/v1/events", "has_more": ..., "data": [...]}`, errors as
`{"error": {"type": "invalid_request_error", "message": ...}}`. `GET /v1/events/<id>` retrieves one.

`payment_event` builds one Stripe event (a PaymentIntent or Charge in `data.object`) for tests;
`sample_payment_events` a deterministic history of payments, some refunded.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import operator
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer, json_response

API_VERSION = "2024-06-20"
BASE_TIME = 1767225600  # 2026-01-01T00:00:00Z
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
LIST_ROUTE = re.compile(r"/v1/events/?$")
ONE_ROUTE = re.compile(r"/v1/events/(?P<id>[A-Za-z0-9_]+)$")
AUTHORS = ("author-ada", "author-grace", "author-linus")
COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}

PAYMENT_INTENT_STATUS = {
    "created": "requires_payment_method",
    "requires_action": "requires_action",
    "processing": "processing",
    "amount_capturable_updated": "requires_capture",
    "succeeded": "succeeded",
    "payment_failed": "requires_payment_method",
    "canceled": "canceled",
}
CHARGE_STATUS = {
    "pending": "pending",
    "succeeded": "succeeded",
    "captured": "succeeded",
    "updated": "succeeded",
    "refunded": "succeeded",  # a refunded charge stays `succeeded`; `refunded` says the rest
    "failed": "failed",
}
NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


class ListError(ValueError):
    """An invalid list parameter; `param` names it as Stripe's error body does."""

    def __init__(self, message: str, param: str, code: str = "parameter_invalid_integer"):
        super().__init__(message)
        self.param = param
        self.code = code


def stripe_rate_limit_headers(seconds: int) -> dict[str, str]:
    """Stripe answers 429 without `Retry-After`; `Stripe-Should-Retry` says a retry is safe."""
    return {"Stripe-Should-Retry": "true"}


def stripe_error(
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    **extra: str,
) -> Response:
    """Stripe's error body, with a `Request-Id` like every Stripe answer."""
    return json_response(
        status,
        {"error": {"type": error_type, "message": message, **extra}},
        {"Request-Id": _request_id()},
    )


def masked_key(key: str) -> str:
    """How Stripe echoes a wrong key: its prefix and last four characters only."""
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "*" * len(key)


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:14]


def _stripe_id(prefix: str, *parts: Any) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return f"{prefix}_{digest[:24]}"


class StripeSandbox:
    """Several Stripe accounts, each a secret key with its own events."""

    def __init__(self, port: int = 0):
        self.accounts: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.server = SandboxServer(self.handle, port, rate_limit_headers=stripe_rate_limit_headers)

    def add_account(self, secret_key: str, events: list[dict[str, Any]]) -> StripeSandbox:
        """Register (or replace) an account's events, readable with `secret_key` only;
        returns the sandbox (a demo builds one in an expression)."""
        with self._lock:
            self.accounts[secret_key] = [(next(self._seq), e) for e in events]
        return self

    def add_event(self, secret_key: str, event: dict[str, Any]) -> None:
        """Append one event to an account (created later than any same-second event before)."""
        with self._lock:
            self.accounts.setdefault(secret_key, []).append((next(self._seq), event))

    def add_events(self, secret_key: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.add_event(secret_key, event)

    def handle(self, request: Request) -> Response:
        """Answer `GET /v1/events` and `GET /v1/events/<id>`."""
        listing = LIST_ROUTE.search(request.path)
        one = ONE_ROUTE.search(request.path)
        if request.method != "GET" or (listing is None and one is None):
            return stripe_error(
                404,
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            )
        key = _secret_key(request.headers.get("authorization", ""))
        if not key:
            return stripe_error(401, NO_KEY)
        with self._lock:
            stored = self.accounts.get(key)
            if stored is None:
                return stripe_error(401, f"Invalid API Key provided: {masked_key(key)}")
            # Newest first; events of the same second in reverse order of arrival.
            events = [e for _, e in sorted(stored, key=lambda s: (s[1]["created"], s[0]))][::-1]
        if one is not None:
            found = next((e for e in events if e["id"] == one["id"]), None)
            if found is None:
                return stripe_error(
                    404, f"No such event: '{one['id']}'", code="resource_missing", param="id"
                )
            return json_response(200, found, {"Request-Id": _request_id()})
        try:
            return self._list(events, request)
        except ListError as error:
            return stripe_error(400, str(error), code=error.code, param=error.param)

    def _list(self, events: list[dict[str, Any]], request: Request) -> Response:
        limit = _integer(request, "limit", DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise ListError(
                f"Invalid limit: must be between 1 and {MAX_LIMIT}", "limit", "parameter_invalid"
            )
        starting_after = request.arg("starting_after")
        ending_before = request.arg("ending_before")
        if starting_after and ending_before:
            raise ListError(
                "You may only specify one of these parameters: ending_before, starting_after.",
                "ending_before",
                "parameter_invalid",
            )
        # The cursor is a position in the whole list; filters apply to what follows it.
        if starting_after:
            events = events[_position(events, starting_after, "starting_after") + 1 :]
        elif ending_before:
            events = events[: _position(events, ending_before, "ending_before")]
        matches = _filter(request)
        matching = [e for e in events if matches(e)]
        if ending_before:  # the page just before the cursor, still newest first
            page, has_more = matching[-limit:], len(matching) > limit
        else:
            page, has_more = matching[:limit], len(matching) > limit
        return json_response(
            200,
            {"object": "list", "url": "/v1/events", "has_more": has_more, "data": page},
            {"Request-Id": _request_id(), "Stripe-Version": API_VERSION},
        )


def _secret_key(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(value.strip()).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return None


def _integer(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.arg(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ListError(f"Invalid integer: {value}", name) from None


def _position(events: list[dict[str, Any]], event_id: str, param: str) -> int:
    for index, event in enumerate(events):
        if event["id"] == event_id:
            return index
    raise ListError(f"No such event: '{event_id}'", param, "resource_missing")


def _filter(request: Request) -> Callable[[dict[str, Any]], bool]:
    """The `created` and `type` filters of a list request (validated once, up front)."""
    exact = _integer(request, "created")
    bounds = {op: _integer(request, f"created[{op}]") for op in COMPARISONS}
    bounds = {op: value for op, value in bounds.items() if value is not None}
    types = (request.query.get("type") or []) + (request.query.get("types[]") or [])

    def matches(event: dict[str, Any]) -> bool:
        created = event["created"]
        if exact is not None and created != exact:
            return False
        if not all(COMPARISONS[op](created, value) for op, value in bounds.items()):
            return False
        return not types or any(fnmatch.fnmatchcase(event["type"], t) for t in types)

    return matches


def payment_event(
    event_type: str,
    payment_intent: str,
    amount: int,
    *,
    created: int = BASE_TIME,
    author_id: str | None = None,
    item_id: str | None = None,
    currency: str = "usd",
    metadata: Mapping[str, str] | None = None,
    object_created: int | None = None,
    charge: str | None = None,
    amount_refunded: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One Stripe event as the events API and webhook deliveries carry it.

    `event_type` is `payment_intent.<what>` (a PaymentIntent in `data.object`) or
    `charge.<what>` (a Charge of that PaymentIntent). `author_id` / `item_id` go into the
    object's `metadata` (with any other `metadata`). `created` is the event's time,
    `object_created` the object's (default: `created`). A `charge.refunded` is a full refund
    unless `amount_refunded` says less. Ids not given are derived from the arguments, so the
    same call always builds the same event.
    """
    kind, _, what = event_type.partition(".")
    meta = {
        **({"author_id": author_id} if author_id is not None else {}),
        **({"item_id": item_id} if item_id is not None else {}),
        **(metadata or {}),
    }
    object_created = created if object_created is None else object_created
    charge_id = charge or "ch_" + payment_intent.removeprefix("pi_")
    previous: dict[str, Any] | None = None
    if kind == "payment_intent" and what in PAYMENT_INTENT_STATUS:
        status = PAYMENT_INTENT_STATUS[what]
        succeeded = status == "succeeded"
        obj: dict[str, Any] = {
            "id": payment_intent,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": amount if status == "requires_capture" else 0,
            "amount_received": amount if succeeded else 0,
            "capture_method": "automatic",
            "client_secret": f"{payment_intent}_secret_{_stripe_id('s', payment_intent)[2:18]}",
            "created": object_created,
            "currency": currency,
            "customer": None,
            "description": None,
            "last_payment_error": None,
            "latest_charge": charge_id if succeeded else None,
            "livemode": False,
            "metadata": meta,
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
            "status": status,
        }
    elif kind == "charge" and what in CHARGE_STATUS:
        refunded_amount = 0
        if what == "refunded":
            refunded_amount = amount if amount_refunded is None else amount_refunded
            previous = {"amount_refunded": 0, "refunded": False}
        paid = what not in ("failed", "pending")
        obj = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if paid else 0,
            "amount_refunded": refunded_amount,
            "balance_transaction": "txn_" + charge_id.removeprefix("ch_") if paid else None,
            "captured": paid,
            "created": object_created,
            "currency": currency,
            "description": None,
            "failure_code": "card_declined" if what == "failed" else None,
            "livemode": False,
            "metadata": meta,
            "paid": paid,
            "payment_intent": payment_intent,
            "payment_method": "pm_card_visa",
            "refunded": refunded_amount >= amount > 0,
            "status": CHARGE_STATUS[what],
        }
    else:
        known = [f"payment_intent.{w}" for w in PAYMENT_INTENT_STATUS] + [
            f"charge.{w}" for w in CHARGE_STATUS
        ]
        raise ValueError(f"unsupported event type {event_type!r}; one of {', '.join(known)}")
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id or _stripe_id("evt", event_type, obj["id"], created),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def sample_payment_events(
    count: int,
    start: int = 1,
    base_time: int = BASE_TIME,
    refund_every: int = 4,
    account: str = "acct",
) -> list[dict[str, Any]]:
    """The events of `count` payments, oldest first; deterministic.

    Payment n (PaymentIntent `payment_intent_id(n, account)`) is created at
    base_time + n*3600 for 500 * (1 + n % 5) minor units (usd), its `metadata` naming author
    `AUTHORS[n % 3]` and item `item-<n>`; its charge is created a second later. It succeeds
    2 seconds after creation with a `payment_intent.succeeded` and a `charge.succeeded` in the
    same second; every `refund_every`-th payment (n % refund_every == 0) is refunded in full
    30 minutes after creation (`charge.refunded`). `account` makes the ids of accounts differ.
    """
    events: list[dict[str, Any]] = []
    for n in range(start, start + count):
        created = base_time + n * 3600
        metadata = {"author_id": AUTHORS[n % len(AUTHORS)], "item_id": f"item-{n}"}
        payment_intent = payment_intent_id(n, account)
        amount = 500 * (1 + n % 5)
        events.append(
            payment_event(
                "payment_intent.succeeded",
                payment_intent,
                amount,
                created=created + 2,
                object_created=created,
                metadata=metadata,
            )
        )
        # The charge is created when the confirmation succeeds, a second after the intent.
        charge = {"object_created": created + 1, "metadata": metadata}
        events.append(
            payment_event("charge.succeeded", payment_intent, amount, created=created + 2, **charge)
        )
        if refund_every and n % refund_every == 0:
            events.append(
                payment_event(
                    "charge.refunded", payment_intent, amount, created=created + 1800, **charge
                )
            )
    return events


def payment_intent_id(n: int, account: str = "acct") -> str:
    """The PaymentIntent id of payment `n` in `sample_payment_events(..., account=account)`."""
    return _stripe_id("pi", account, n)


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
DEMO_SECRET_ENV = "DEMO_STRIPE_SECRET"


def demo_sandbox(port: int) -> StripeSandbox:
    """An account whose events hold a dozen payments."""
    return StripeSandbox(port).add_account(os.environ[DEMO_SECRET_ENV], sample_payment_events(12))


DEMO = sandbox_part(8087, demo_sandbox, {DEMO_SECRET_ENV: "demo-stripe-secret"})
