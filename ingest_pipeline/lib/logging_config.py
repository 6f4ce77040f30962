"""Where log lines go and what they look like, for every command (`INGEST_LOG_FORMAT`,
`INGEST_LOG_LEVEL`).

Rules it keeps:
- One handler, on the root logger, writing to stderr: `text` (`time level logger: message
  key=value ...`) or `json` (one JSON object per line: time, level, logger, message, the
  record's fields and, on an error, the traceback as `exc`).
- The level applies to the project's own loggers (`ingest_pipeline.*`) and uvicorn's; every
  other library logs its warnings and errors only, whatever the level (dlt, botocore and
  dagster are chatty at INFO).
- Structured fields travel as `extra={"fields": {...}}`; each is a JSON value. A field never
  holds a secret: callers log names of secrets, never values.
- Calling it again replaces its handler (tests, a second command in one process): lines are
  never written twice. Nor is a line a Dagster run captured (its own loggers write it:
  `lib/dagster_logs.py` in JSON).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

PROJECT_LOGGERS = ("ingest_pipeline", "uvicorn")
_HANDLER_NAME = "ingest_pipeline"


class JsonFormatter(logging.Formatter):
    """One JSON object per line. A subclass may say what the message is and add fields
    (`lib/dagster_logs.py`: the lines of Dagster runs); the four first keys always win."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self.message(record),
        }
        line.update({k: v for k, v in self.fields(record).items() if k not in line})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)

    def message(self, record: logging.LogRecord) -> str:
        return record.getMessage()

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's structured fields (`extra={"fields": {...}}`)."""
        fields = getattr(record, "fields", None)
        return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            text += "".join(f" {k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(
    log_format: str = "text", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Install the project's handler on the root logger (replacing an earlier one)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream else StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_not_captured_by_a_dagster_run)
    root.addHandler(handler)
    number = logging.getLevelName(level.upper())
    number = number if isinstance(number, int) else logging.INFO
    root.setLevel(max(number, logging.WARNING))
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(number)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each line (a test harness swaps it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _not_captured_by_a_dagster_run(record: logging.LogRecord) -> bool:
    """A record a Dagster run captured (`get_dagster_logger` within a step: it carries the run's
    `dagster_meta`) is written by the run's own loggers; on its way up to the root it would be
    written a second time, without the run's context."""
    return not hasattr(record, "dagster_meta")


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c.isspace() for c in text)) else text
