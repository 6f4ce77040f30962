"""Every source type the platform knows, in one place: its raw resource, its normalized entity
and how often its instances run unless the tenants file says otherwise (`schedule: <cron>`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceType:
    name: str
    raw_resource: str  # the raw asset is raw/<name>/<raw_resource>
    entity: str  # the normalized asset is normalized/<entity>
    default_cron: str

    @property
    def job_name(self) -> str:
        return f"ingest_{self.name}"

    @property
    def partitions_name(self) -> str:
        return f"{self.name}_instances"


HOURLY = "0 * * * *"
EVERY_15_MINUTES = "*/15 * * * *"

SOURCE_TYPES: dict[str, SourceType] = {
    t.name: t
    for t in (
        SourceType("rest_api", "records", "items", HOURLY),
        SourceType("csv", "rows", "items", HOURLY),
        SourceType("rss", "entries", "items", HOURLY),
        SourceType("playstore", "reviews", "feedback", EVERY_15_MINUTES),
        SourceType("twitter", "tweets", "feedback", EVERY_15_MINUTES),
        SourceType("discourse", "posts", "feedback", EVERY_15_MINUTES),
        SourceType("intercom", "conversations", "feedback", EVERY_15_MINUTES),
        SourceType("stripe", "events", "payments", EVERY_15_MINUTES),
    )
}


def types_of_entity(entity: str) -> list[SourceType]:
    return [t for t in SOURCE_TYPES.values() if t.entity == entity]
