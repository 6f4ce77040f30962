"""Deterministic sample app events (VIEW, COPY, SAVE, FORK, VOTE) for the demo and benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

EVENT_TYPES = ("VIEW", "VIEW", "VIEW", "VIEW", "COPY", "SAVE", "FORK", "VOTE")


def sample_events(
    tenant: str, first_day: datetime, days: int, per_day: int, items: int = 50, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """`per_day` events a day over `items` items (author = item number mod 7), a few ips."""
    rng = random.Random(seed)
    for day in range(days):
        start = first_day + timedelta(days=day)
        for n in range(per_day):
            item = (
                rng.randint(1, items) if rng.random() < 0.5 else rng.randint(1, max(1, items // 10))
            )
            when = start + timedelta(seconds=rng.randrange(86_400))
            yield {
                "tenant_id": tenant,
                "source_type": "app_events",
                "source_instance": "sample",
                "event_id": f"{tenant}-{day}-{n}",
                "event_type": rng.choice(EVENT_TYPES),
                "occurred_at": when,
                "item_id": f"item-{item}",
                "author_id": f"author-{item % 7}",
                "actor_id": f"user-{rng.randint(1, 200)}",
                "ip": f"10.0.{rng.randint(0, 3)}.{rng.randint(1, 40)}",
                "raw_load_id": "sample",
                "ingested_at": when,
            }
