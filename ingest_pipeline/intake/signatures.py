"""Webhook signatures of Intercom and Stripe: verification over the raw body, and signing.

Pure functions (no I/O, no clock unless passed in). Every comparison of a computed signature
with a received one goes through `hmac.compare_digest`. A verdict's reason never contains the
received signature or the secret, so it can be logged and audited as-is.

- Intercom: `X-Hub-Signature: sha1=<hex HMAC-SHA1(raw body, key=app client secret)>`.
- Stripe: `Stripe-Signature: t=<unix ts>,v1=<hex HMAC-SHA256("<ts>.<raw body>", key=whsec)>`,
  possibly with several `v1` entries (Stripe signs with every active secret while one is
  rolled); any of them may match. Timestamps further than `tolerance` seconds from now (past or
  future) are refused, which bounds how long a captured delivery can be replayed.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

STRIPE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str  # "valid", or why not (safe to log: never a signature or a secret)
    status: int = 200  # the HTTP status to answer a failure with

    def __bool__(self) -> bool:
        return self.ok


VALID = Verdict(True, "valid")


def _hex_hmac(algorithm: str, secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, algorithm).hexdigest()


def _same(expected: str, received: str) -> bool:
    # Header values arrive as latin-1 text; compare bytes so non-ASCII input cannot raise.
    return hmac.compare_digest(expected.encode("latin-1"), received.encode("latin-1", "replace"))


def sign_intercom(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature` header value Intercom sends with `body`."""
    return "sha1=" + _hex_hmac("sha1", secret, body)


def verify_intercom(body: bytes, header: str | None, secret: str) -> Verdict:
    """Check an `X-Hub-Signature` header against the raw body and the tenant's client secret."""
    if not header:
        return Verdict(False, "missing X-Hub-Signature header", 401)
    algorithm, _, received = header.strip().partition("=")
    if algorithm.lower() != "sha1" or not received:
        return Verdict(False, "malformed X-Hub-Signature header (expected sha1=<hex>)", 401)
    if not _same(_hex_hmac("sha1", secret, body), received.lower()):
        return Verdict(False, "signature does not match", 401)
    return VALID


def sign_stripe(body: bytes, secret: str | Sequence[str], timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value Stripe sends with `body`: one `v1` per secret."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    payload = f"{ts}.".encode() + body
    return ",".join([f"t={ts}", *(f"v1={_hex_hmac('sha256', s, payload)}" for s in secrets)])


def verify_stripe(
    body: bytes,
    header: str | None,
    secrets: str | Sequence[str],
    now: float | None = None,
    tolerance: int = STRIPE_TOLERANCE_SECONDS,
) -> Verdict:
    """Check a `Stripe-Signature` header: any `v1` made with any of `secrets` over
    "<t>.<raw body>", and `t` within `tolerance` seconds of `now` (default: the clock).

    The signature is checked before the time, so "stale" means a genuine but old delivery
    (a replay) and a forgery is reported as a forgery whatever its timestamp.
    """
    if not header:
        return Verdict(False, "missing Stripe-Signature header", 401)
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return Verdict(False, "malformed Stripe-Signature header (t is not a number)", 401)
        elif name == "v1" and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        return Verdict(False, "malformed Stripe-Signature header (needs t= and v1=)", 401)
    keys = [secrets] if isinstance(secrets, str) else [s for s in secrets if s]
    payload = f"{timestamp}.".encode() + body
    matched = False
    for key in keys:
        expected = _hex_hmac("sha256", key, payload)
        for candidate in candidates:  # no early exit: every pair is compared
            matched |= _same(expected, candidate)
    if not matched:
        return Verdict(False, "signature does not match", 401)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return Verdict(False, f"stale timestamp (more than {tolerance} s from now)", 400)
    return VALID
