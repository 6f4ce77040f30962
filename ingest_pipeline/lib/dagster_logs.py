"""The log lines of Dagster runs as JSON: one object per Dagster event and per `context.log`
message, on stderr, in the shape of `logging_config.JsonFormatter`.

Rules it keeps:
- A line has time, level, logger, message (the event's or the call's own text, not Dagster's
  `job - run id - pid - step - EVENT - text` line), run_id, job, step_key, event_type (the
  name of the Dagster event's type, `STEP_SUCCESS`, `RUN_SUCCESS`; null for a `context.log`
  message), one field per run tag it is told to copy (null when the run has no such tag),
  and, for an event carrying an error (a step or run failure), the error as `exc`. Structured fields of a `context.log` call
  (`extra={"fields": {...}}`) come after, never replacing one of these.
- Nothing else of the run is copied: not its other tags, not the event's data. The message and
  the error have the value of every secret-named environment variable masked (`lib.alerts`).
- `json_run_logger(...)` is a logger definition with the config of Dagster's console logger
  (`log_level`, `name`), so run configs written for that one (`loggers: console: ...`) work
  with it as the job's `console` logger.
- Dagster gives a run whose run config names no logger (every schedule, sensor, automation
  and UI launch) its colored console logger, not the job's: `use_for_runs_without_logger_config`
  makes that fallback this process's logger definition instead (Dagster 1.13's
  `default_system_loggers`, checked by `test_fast_run_logs.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from ingest_pipeline.lib.alerts import redact
from ingest_pipeline.lib.logging_config import JsonFormatter, StderrHandler

# Where Dagster keeps a run's context on each record it hands a logger
# (`dagster._core.log_manager.LOG_RECORD_METADATA_ATTR`).
DAGSTER_META = "dagster_meta"

_CONSOLE_CONFIG = dg.Field(
    {
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    }
)


class DagsterJsonFormatter(JsonFormatter):
    """`JsonFormatter` plus the run's context from the record's Dagster metadata.

    `tag_fields` names the run tags to copy: {field name: tag}."""

    def __init__(self, tag_fields: Mapping[str, str]) -> None:
        super().__init__()
        self.tag_fields = dict(tag_fields)

    def message(self, record: logging.LogRecord) -> str:
        meta = _meta(record)
        text = meta.get("orig_message") if meta else None
        return redact(text if isinstance(text, str) else record.getMessage())

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        meta = _meta(record) or {}
        tags = meta.get("job_tags") or {}
        event = meta.get("dagster_event")
        line: dict[str, Any] = {
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            **{field: tags.get(tag) for field, tag in self.tag_fields.items()},
            "step_key": meta.get("step_key"),
            "event_type": _event_type(event),
        }
        error = _event_error(event)
        if error and not record.exc_info:
            line["exc"] = redact(error)
        line.update({k: v for k, v in super().fields(record).items() if k not in line})
        return line


def json_run_logger(tag_fields: Mapping[str, str]) -> dg.LoggerDefinition:
    """A Dagster logger writing `DagsterJsonFormatter` lines to stderr."""

    @dg.logger(_CONSOLE_CONFIG, description="One JSON object per line on stderr.")
    def json_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
        config = init_context.logger_config
        # Not `logging.getLogger`: a logger of its own for each run, like Dagster's console one.
        logger = logging.Logger(config["name"], level=config["log_level"].upper())
        handler = StderrHandler()
        handler.setFormatter(DagsterJsonFormatter(tag_fields))
        logger.addHandler(handler)
        return logger

    return json_console_logger


SystemLoggers = Callable[[Any], Sequence[tuple[dg.LoggerDefinition, Mapping[str, object]]]]


def use_for_runs_without_logger_config(logger_def: dg.LoggerDefinition) -> None:
    """From now on, in this process, a run whose run config names no logger gets `logger_def`
    (with the config Dagster gives its console logger: name `dagster`, the instance's
    `python_logs.python_log_level` or DEBUG) instead of Dagster's colored console logger.
    Calling it again with another definition replaces the first, never wraps it twice."""
    from dagster._core.execution import context_creation_job

    current = context_creation_job.default_system_loggers
    original: SystemLoggers = getattr(current, "ingest_original", current)

    def system_loggers(instance: Any) -> list[tuple[dg.LoggerDefinition, Mapping[str, object]]]:
        return [
            (logger_def if definition is dg.colored_console_logger else definition, config)
            for definition, config in original(instance)
        ]

    system_loggers.ingest_original = original  # type: ignore[attr-defined]
    context_creation_job.default_system_loggers = system_loggers


def _meta(record: logging.LogRecord) -> Mapping[str, Any] | None:
    meta = getattr(record, DAGSTER_META, None)
    return meta if isinstance(meta, Mapping) else None


def _event_type(event: Any) -> str | None:
    """The name of the event's `DagsterEventType` (`RUN_SUCCESS`; its value is the older
    `PIPELINE_SUCCESS`), as Dagster's console line shows it."""
    event_type = getattr(event, "event_type", None)
    return event_type.name if isinstance(event_type, dg.DagsterEventType) else None


def _event_error(event: Any) -> str | None:
    """The error a Dagster event carries (a step's or a run's failure), as Dagster shows it."""
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    if error is None:
        return None
    shown = getattr(data, "error_display_string", None)
    return shown if isinstance(shown, str) and shown else error.to_string()
