"""When the normalized layer runs by itself: after new data in any parent, never on top of itself.

The normalized assets (and `normalized/rejected_records`) are unpartitioned and idempotent: a
run consumes every raw dlt load not yet normalized. So the rule is simply "a parent was updated
since this asset was last requested, and no run of it is in progress":

- a parent is any raw partition (one source instance) or a landing asset; one update is enough;
- nothing waits for parents that never materialized (unlike `AutomationCondition.eager()`,
  whose `~any_deps_missing` would block forever on a dead feed's partition) nor for parents still
  running (with hundreds of instances on schedules there may never be a quiet moment; a raw load
  that lands during a normalize run triggers the next one);
- the trigger is cleared when the asset is *requested*, not when it materializes: a raw load that
  lands while a normalize run is in progress (after that run read the pending loads) must still
  cause one more run. The price is one extra, empty run after a manual materialization. A
  parent update between the request and the next tick is seen at that tick together with the
  request; it is later than the request, so it wins (Dagster's `since` compares their times);
- like every declarative condition, the first evaluation only takes its bearings: updates from
  before the sensor's first tick are not seen (the next raw load triggers the run).

The checks of each asset have no condition of their own, so they ride along with every
materialization the sensor requests; the checks recorded on a clock of their own
(instances_fresh, dbt_source_fresh) do not.
"""

import dagster as dg

from ingest_pipeline.defs.normalized.checks import with_own_checks
from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key

SENSOR_NAME = "normalize_automation_sensor"
CHECKED_ENTITIES = ("items", "feedback", "payments")  # each with its checks; and the rejects


def normalize_condition() -> dg.AutomationCondition:
    """True when a parent updated since the last request and no run of the asset is going on."""
    # any_deps_match(newly_updated()), not any_deps_updated(): the tick after a request sees
    # both the request (the reset) and any parent update since; `since` lets the update win
    # only when it knows both times, and any_deps_updated()'s and/or drop the update's.
    parent_updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    # A parent requested on this very tick (rejected_records after the entities) needs no memory.
    parent_requested = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.will_be_requested()
    )
    return (
        (parent_updated.since(dg.AutomationCondition.newly_requested()) | parent_requested)
        & ~dg.AutomationCondition.in_progress()
    ).with_label("any parent updated since last requested, not in progress")


normalize_automation_sensor = dg.AutomationConditionSensorDefinition(
    SENSOR_NAME,
    target=with_own_checks(*(normalized_asset_key(e) for e in CHECKED_ENTITIES))
    | dg.AssetSelection.assets(normalized_asset_key("rejected_records")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Normalizes new raw and landed data: runs normalized/items, feedback, payments "
    "(with their checks) and rejected_records when a parent has been updated.",
)
