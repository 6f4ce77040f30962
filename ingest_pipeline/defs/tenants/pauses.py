"""Auto-pause: a source instance whose runs keep failing on authentication is skipped until
someone lifts it (`ingest-pipeline resume TENANT INSTANCE`).

Rules kept here:
- An instance is paused when its last `pause_after_auth_failures` runs (an option of every
  instance, default 3; 0 never pauses) all failed on an authentication error: the step's error
  says 401/403, Unauthorized or Forbidden. Another failure (a dead server, a bad record) never
  pauses: retrying it is what fixes it.
- The pause lives in the Dagster instance's key-value store (`ingest/paused/<type>.<tenant>.
  <instance>`), so the schedules of every code server and daemon see it; an empty value is "not
  paused". Pausing also records an observation `paused: true` (with the reason) on the instance's
  raw partition, which the UI shows beside its runs; resuming records `paused: false`.
- The schedules skip a paused instance and say so in the tick; the alert (kind `paused`) is sent
  once, by the run-failure sensor that paused it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import dagster as dg

from ingest_pipeline.defs.sources.raw_assets import raw_asset_key
from ingest_pipeline.lib.source_types import SOURCE_TYPES

PREFIX = "ingest/paused/"
DEFAULT_AUTH_FAILURES = 3
_AUTH_ERROR = re.compile(r"\b(401|403)\b|Unauthorized|Forbidden")


def is_auth_error(text: str | None) -> bool:
    return bool(text and _AUTH_ERROR.search(text))


def paused(instance: dg.DagsterInstance, instance_tags: list[str]) -> dict[str, dict[str, Any]]:
    """{instance tag (`type.tenant.instance`): its pause (since, reason)} of those paused."""
    keys = {PREFIX + tag for tag in instance_tags}
    found = instance.run_storage.get_cursor_values(keys) if keys else {}
    return {key[len(PREFIX) :]: json.loads(value) for key, value in found.items() if value}


def run_error(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The messages of the run's first failed step's error and its causes (no stack: code
    lines in a traceback may name a status code too)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.event_specific_data.error if entry.dagster_event else None
        messages = []
        while error is not None:
            messages.append(error.message)
            error = error.cause
        if messages:
            return "\n".join(messages)
    return None


def failed_on_auth_in_a_row(instance: dg.DagsterInstance, instance_tag: str, times: int) -> bool:
    """The instance's last `times` runs all failed on an authentication error."""
    if times <= 0:
        return False
    records = instance.get_run_records(
        dg.RunsFilter(tags={"ingest/instance": instance_tag}), limit=times
    )
    return len(records) == times and all(
        r.dagster_run.status == dg.DagsterRunStatus.FAILURE
        and is_auth_error(run_error(instance, r.dagster_run.run_id))
        for r in records
    )


def pause(instance: dg.DagsterInstance, instance_tag: str, reason: str) -> None:
    value = json.dumps({"since": time.time(), "reason": reason})
    instance.run_storage.set_cursor_values({PREFIX + instance_tag: value})
    _observe(instance, instance_tag, True, reason)


def resume(instance: dg.DagsterInstance, tenant: str, name: str) -> list[str]:
    """Lift the pause of the tenant's instance `name` (whatever its type); the tags lifted."""
    tags = [f"{source_type}.{tenant}.{name}" for source_type in SOURCE_TYPES]
    lifted = list(paused(instance, tags))
    if lifted:
        instance.run_storage.set_cursor_values({PREFIX + tag: "" for tag in lifted})
        for tag in lifted:
            _observe(instance, tag, False, "resumed by hand")
    return lifted


def _observe(instance: dg.DagsterInstance, instance_tag: str, is_paused: bool, reason: str) -> None:
    source_type, partition = instance_tag.split(".", 1)
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=raw_asset_key(source_type),
            partition=partition,
            metadata={"paused": is_paused, "reason": reason},
        )
    )
