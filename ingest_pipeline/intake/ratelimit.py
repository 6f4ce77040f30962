"""Per-tenant rate limit of the intake service: a token bucket per tenant, in memory.

One process = one limit: the buckets live in this process only, so N intake processes (or
replicas) behind a load balancer let a tenant through at up to N times its configured rate.
A shared limit needs a shared store (Redis, the proxy in front); for one small service this is
enough, and senders of webhooks (Stripe, Intercom) retry a 429 later.

A bucket holds at most `per_minute` tokens (the burst) and refills at `per_minute / 60` tokens
a second; each request takes one. Only configured tenants get a bucket, so unknown tenant names
in URLs cannot grow the table.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float
    per_minute: int


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, tenant: str, per_minute: int) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(tenant)
            if bucket is None or bucket.per_minute != per_minute:  # new, or limit changed
                bucket = self._buckets[tenant] = _Bucket(float(per_minute), now, per_minute)
            rate = per_minute / 60.0
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate

    @staticmethod
    def retry_after_header(wait_seconds: float) -> str:
        return str(max(1, math.ceil(wait_seconds)))
