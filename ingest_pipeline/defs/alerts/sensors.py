"""The alerting sensors, default running: a failed run, a failed check (ERROR or WARN), a sensor
or schedule whose ticks fail three times in a row. Each finding becomes one Alert
(lib/alerts.py: the payload, folding of repeats, delivery); none of them can fail a run.

- `alert_run_failure_sensor`: Dagster's run-failure sensor; the error is the first failed step's
  innermost cause (what went wrong), else the run's own message. It also pauses a source
  instance whose runs keep failing on authentication (defs/tenants/pauses.py), alerting once.
- `alert_check_sensor`: each check's executions past its cursor (an execution id), read newest
  first down to it; a failed one alerts, a planned one (its run has not evaluated it yet) holds
  the cursor back. It starts at the newest, so adding it to a long-lived instance alerts on no
  history.
- `alert_tick_failure_sensor`: every sensor and schedule whose three newest ticks failed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import dagster as dg

from ingest_pipeline.defs.tenants.freshness import CHECK_NAME as FRESHNESS_CHECK
from ingest_pipeline.defs.tenants.pauses import (
    DEFAULT_AUTH_FAILURES,
    failed_on_auth_in_a_row,
    is_auth_error,
    pause,
    paused,
    run_error,
)
from ingest_pipeline.domain.tenants import TenantsFileError, load_source_instances
from ingest_pipeline.lib.alerts import Alert, asset_url, first_line, run_url, send
from ingest_pipeline.settings import get_settings

FAILED_TICKS_IN_A_ROW = 3
CHECKS_PAGE = 25
INTERVAL_SECONDS = 30


def run_failure_alert(run: dg.DagsterRun, error: str | None) -> Alert:
    settings = get_settings()
    tags = run.tags
    partition = tags.get("dagster/partition") or _range(tags)
    tenant, instance = tags.get("ingest/tenant"), tags.get("ingest/source")
    # An instance's partition key is `tenant.instance` already; a metrics run's is its day(s);
    # a landing run has its tenant alone.
    where = partition or (f"{tenant}.{instance}" if tenant and instance else tenant)
    return Alert(
        kind="run_failure",
        text=f"Run of {run.job_name}{f' ({where})' if where else ''} failed: {error}",
        subject=f"{run.job_name}|{tenant}|{instance}|{partition}|{error}",
        job=run.job_name,
        run_id=run.run_id,
        tenant=tenant,
        source_instance=instance,
        partition=partition,
        severity="ERROR",
        error=error,
        url=run_url(settings, run.run_id),
    )


def _range(tags: dict[str, str] | Any) -> str | None:
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start and end else None


@dg.run_failure_sensor(
    name="alert_run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=INTERVAL_SECONDS,
    description="One alert per failed run (INGEST_ALERT_WEBHOOK_URL), repeats folded.",
)
def alert_run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    steps = context.get_step_failure_events()
    error = steps[0].event_specific_data.error if steps else None  # type: ignore[union-attr]
    # Dagster wraps a step's own exception ("Error occurred while executing op ..."): the
    # innermost cause says what went wrong.
    while error is not None and error.cause is not None:
        error = error.cause
    message = error.message if error is not None else context.failure_event.message
    error_line = first_line(message)
    send(run_failure_alert(context.dagster_run, error_line), context.instance, get_settings())
    pause_after_auth_failures(context.instance, context.dagster_run, error_line)


def pause_after_auth_failures(
    instance: dg.DagsterInstance, run: dg.DagsterRun, error: str | None
) -> None:
    """Pause the run's source instance once its runs failed on authentication often enough
    in a row (its `pause_after_auth_failures`), and alert that once."""
    tag = run.tags.get("ingest/instance")
    if not tag or not is_auth_error(run_error(instance, run.run_id)) or paused(instance, [tag]):
        return
    tenant, name = run.tags.get("ingest/tenant"), run.tags.get("ingest/source")
    times = auth_failures_allowed(tenant, name)
    if not failed_on_auth_in_a_row(instance, tag, times):
        return
    reason = f"{times} runs in a row failed on authentication: {error}"
    pause(instance, tag, reason)
    # The failed run's own alert (job, run, tenant, instance, partition, error, link), as a pause.
    alert = dataclasses.replace(
        run_failure_alert(run, error),
        kind="paused",
        text=f"{tenant}.{name} paused: {reason}; `ingest-pipeline resume {tenant} {name}` lifts it",
        subject=tag,
    )
    send(alert, instance, get_settings())


def auth_failures_allowed(tenant: str | None, name: str | None) -> int:
    """The instance's `pause_after_auth_failures` (the default if the file no longer has it)."""
    try:
        instances = load_source_instances(get_settings().tenants_file)
    except TenantsFileError:
        return DEFAULT_AUTH_FAILURES
    for source in instances:
        if (source.tenant, source.name) == (tenant, name):
            return int(source.options.get("pause_after_auth_failures", DEFAULT_AUTH_FAILURES))
    return DEFAULT_AUTH_FAILURES


def check_alert(evaluation: Any, run_id: str) -> Alert | None:
    """The alert of a failed check evaluation (None if it passed)."""
    if evaluation.passed:
        return None
    settings = get_settings()
    key: dg.AssetKey = evaluation.asset_key
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    asset = key.to_user_string()
    description = evaluation.description or ""
    return Alert(
        kind="check",
        text=f"Check {evaluation.check_name} on {asset} failed ({severity})"
        + (f": {first_line(description)}" if description else ""),
        subject=f"{asset}|{evaluation.check_name}|{severity}",
        run_id=run_id,
        asset=asset,
        check=evaluation.check_name,
        severity=severity,
        error=first_line(description),
        url=asset_url(settings, key),
    )


@dg.sensor(
    name="alert_check_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=INTERVAL_SECONDS,
    description="One alert per asset check that failed with severity ERROR or WARN.",
)
def alert_check_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    storage = context.instance.event_log_storage
    check_keys = context.repository_def.asset_graph.asset_check_keys
    if context.cursor is None:  # the first tick starts from now: no alerts on history
        newest = [storage.get_asset_check_execution_history(key, limit=1) for key in check_keys]
        return dg.SensorResult(cursor=str(max((r[0].id for r in newest if r), default=0)))
    after = int(context.cursor)
    new = sorted(
        (record for key in check_keys for record in executions_after(storage, key, after)),
        key=lambda record: record.id,
    )
    for record in new:
        # A planned execution's event is the plan (no outcome yet): only a failed one alerts.
        event = record.event.dagster_event if record.event else None
        # The freshness check alerts per stale instance itself (tenants/freshness.py).
        fresh_check = record.key.name == FRESHNESS_CHECK
        if record.status.value == "FAILED" and event is not None and not fresh_check:
            alert = check_alert(event.event_specific_data, record.run_id)
            if alert is not None:
                send(alert, context.instance, get_settings())
    return dg.SensorResult(
        cursor=str(check_cursor(new, after)),
        skip_reason=None if new else "no new check evaluations",
    )


def executions_after(storage: Any, key: dg.AssetCheckKey, after: int) -> list[Any]:
    """The check's executions with an id past `after`, read newest first a page at a time."""
    found: list[Any] = []
    page: int | None = None
    while True:
        batch = storage.get_asset_check_execution_history(key, limit=CHECKS_PAGE, cursor=page)
        found += [record for record in batch if record.id > after]
        if len(batch) < CHECKS_PAGE or batch[-1].id <= after:
            return found
        page = batch[-1].id


def check_cursor(new: list[Any], after: int) -> int:
    """Past every evaluation read, but not past one still planned (its run has not evaluated
    it yet) unless it is older than an hour (its run died: it never will be)."""
    stale = time.time() - 3600
    planned = [r.id for r in new if r.status.value == "PLANNED" and r.create_timestamp > stale]
    return min(planned) - 1 if planned else max((r.id for r in new), default=after)


@dg.sensor(
    name="alert_tick_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=INTERVAL_SECONDS,
    description="One alert per sensor or schedule whose last three ticks failed.",
)
def alert_tick_failure_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    instance, settings = context.instance, get_settings()
    failing = []
    for state in instance.all_instigator_state():
        if state.name == "alert_tick_failure_sensor":
            continue
        ticks = instance.get_ticks(
            state.instigator_origin_id, state.selector_id, limit=FAILED_TICKS_IN_A_ROW
        )
        if len(ticks) == FAILED_TICKS_IN_A_ROW and all(t.status.value == "FAILURE" for t in ticks):
            error = first_line(ticks[0].error.message if ticks[0].error else None)
            failing.append(state.name)
            alert = Alert(
                kind="tick_failure",
                text=f"{state.name}: its last {FAILED_TICKS_IN_A_ROW} ticks failed: {error}",
                subject=state.name,
                error=error,
                severity="ERROR",
                url=f"{settings.ui_base_url.rstrip('/')}/automation",
            )
            send(alert, instance, settings)
    return dg.SkipReason(f"failing: {failing}" if failing else "no sensor or schedule failing")
