"""Rate limits of the intake service: token buckets in memory, one per key.

Two limits, so that nobody can spend a tenant's budget but the tenant:
- per tenant (`rate_limit_per_minute` of its intake block): taken only by *authenticated*
  requests (a verified signature, a valid upload token), once they are;
- per client IP (`UNAUTHENTICATED_PER_MINUTE` unless the app is given another): taken by every
  request to a tenant route that does not authenticate (unknown tenant, missing or forged
  signature or token, a stale replay, a body refused before its signature was checked). An IP
  whose budget is spent gets 429 before its body is read, whoever it is: behind a reverse
  proxy, uvicorn must be told the proxy's address (`--forwarded-allow-ips`) so the client IP
  is the sender's, not the proxy's.

One process = one limit: the buckets live in this process only, so N intake processes (or
replicas) behind a load balancer let a tenant through at up to N times its configured rate.
A shared limit needs a shared store (Redis, the proxy in front); for one small service this is
enough, and senders of webhooks (Stripe, Intercom) retry a 429 later.

A bucket holds at most `per_minute` tokens (the burst) and refills at `per_minute / 60` tokens
a second; each request takes one. Tenant buckets exist only for configured tenants; IP buckets
are bounded by `max_keys` (full buckets, which remember nothing, are forgotten first).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

UNAUTHENTICATED_PER_MINUTE = 60  # per client IP: requests that do not authenticate
MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float
    per_minute: int


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS):
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, per_minute: int) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available."""
        with self._lock:
            bucket = self._refilled(key, per_minute)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) * 60.0 / per_minute

    def wait(self, key: str, per_minute: int) -> float:
        """The seconds until `key` has a token (0.0: now), taking none. A key never charged
        has a full bucket and is not stored."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            bucket = self._refilled(key, per_minute)
            return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) * 60.0 / per_minute

    def _refilled(self, key: str, per_minute: int) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None or bucket.per_minute != per_minute:  # new, or limit changed
            if bucket is None and len(self._buckets) >= self._max_keys:
                self._forget(now)
            bucket = self._buckets[key] = _Bucket(float(per_minute), now, per_minute)
        rate = per_minute / 60.0
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    def _forget(self, now: float) -> None:
        """Make room: drop the buckets that have refilled (they hold no debt), else the
        oldest half (insertion order)."""
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * b.per_minute / 60.0 >= b.per_minute
        ]
        for key in full or list(self._buckets)[: len(self._buckets) // 2 + 1]:
            del self._buckets[key]

    @staticmethod
    def retry_after_header(wait_seconds: float) -> str:
        return str(max(1, math.ceil(wait_seconds)))
