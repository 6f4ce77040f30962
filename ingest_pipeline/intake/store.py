"""Landing a verified webhook delivery: `webhooks/<provider>/<tenant>/<yyyy-mm-dd>/<event id>.json`.

The date is the UTC day the delivery was received; the object is the raw body, byte for byte.
Exactly one object per event id:
- the PUT is conditional (`If-None-Match: *`): a redelivery of an event already landed that
  day gets 412 from the store and nothing is overwritten (S3, MinIO and the moto emulator
  honour it; checked against moto 5.2.5);
- a redelivery on a later day (Stripe retries for up to 3 days; a 2xx lost on the way back
  is retried) would land under a new date: the keys of the same event id on earlier days are
  HEAD-ed first, and a hit is a duplicate too. Only days the event can have been delivered
  on are checked: from the day it was created (the signed `created` / `created_at`, less
  `CLOCK_SKEW` for the sender's clock) to yesterday, at most `lookback_days` back (all of them
  when the event has no creation time). A delivery of a fresh event (nearly all of them)
  therefore costs one conditional PUT and no HEAD. An event redelivered more than
  `lookback_days` days after its first delivery (a manual resend of an old event) lands again
  under the new day; downstream keys (payment id, event id) absorb it.
The store answers only after the object is stored, so a 2xx means landed.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

# Use with `fullmatch`: with `match` and `$`, "evt\n" would pass (`$` matches before a final
# newline) and then make a key the store refuses.
EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
REDELIVERY_LOOKBACK_DAYS = 3  # Stripe's automatic-retry window
CLOCK_SKEW = timedelta(minutes=5)  # the sender's clock may be this far ahead of ours


def webhook_key(provider: str, tenant: str, event_id: str, received_at: datetime) -> str:
    """The landing key of a delivery received at `received_at` (aware; the UTC day is used)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    day = received_at.astimezone(UTC).strftime("%Y-%m-%d")
    return f"webhooks/{provider}/{tenant}/{day}/{event_id}.json"


# Readiness probes: no retries, short timeouts. Landing: a few retries, a pool for the threads.
PROBE_CONFIG = BotoConfig(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}
)
STORE_CONFIG = BotoConfig(
    connect_timeout=5,
    read_timeout=15,
    retries={"mode": "standard", "max_attempts": 3},
    max_pool_connections=64,
)


class WebhookStore:
    def __init__(
        self, client: Any, bucket: str, lookback_days: int = REDELIVERY_LOOKBACK_DAYS
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.lookback_days = lookback_days

    def land(
        self,
        provider: str,
        tenant: str,
        event_id: str,
        body: bytes,
        received_at: datetime,
        created_at: datetime | None = None,
    ) -> tuple[str, str]:
        """Store the body once: ("accepted" | "duplicate", the key). Blocking (boto3).

        `created_at`: when the sender created the event (from the verified body), if known.
        """
        key = webhook_key(provider, tenant, event_id, received_at)
        for earlier in self.earlier_keys(provider, tenant, event_id, received_at, created_at):
            if self._exists(earlier):
                return "duplicate", earlier
        for attempt in range(3):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
                return "accepted", key
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "PreconditionFailed" or status == 412:
                    return "duplicate", key
                # S3 answers 409 while another conditional write of the same key is in flight.
                if code == "ConditionalRequestConflict" and attempt < 2:
                    time.sleep(0.1 * (attempt + 1))
                    continue
                raise
        raise AssertionError("unreachable")

    def earlier_keys(
        self,
        provider: str,
        tenant: str,
        event_id: str,
        received_at: datetime,
        created_at: datetime | None = None,
    ) -> list[str]:
        """The keys this event would have if it had been delivered on an earlier day."""
        today = received_at.astimezone(UTC).date()
        oldest = today - timedelta(days=self.lookback_days)
        if created_at is not None:
            oldest = max(oldest, (created_at - CLOCK_SKEW).astimezone(UTC).date())
        days = (today - oldest).days
        return [
            webhook_key(provider, tenant, event_id, received_at - timedelta(days=n))
            for n in range(1, days + 1)
        ]

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return False
            raise
