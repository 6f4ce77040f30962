"""The log lines of every run of the code location, in INGEST_LOG_FORMAT's shape.

`json`: each Dagster event and each `context.log` message of a run is one JSON object on stderr
(`lib/dagster_logs.py`) with the run's tenant and source instance (the tags every run of an
instance carries: `SourceInstance.run_tags`). It is every job's `console` logger (the one run
configs name, as `ingest-pipeline ingest` does) and, in the processes that load these
definitions (code server, run workers, the CLI), the logger of runs whose run config names none
(schedules, sensors, automation, the UI). `text` (the default): Dagster's colored console
logger, untouched. Read when the definitions load.
"""

import dagster as dg
from pydantic import ValidationError

from ingest_pipeline.lib.dagster_logs import json_run_logger, use_for_runs_without_logger_config
from ingest_pipeline.settings import get_settings

# Field of a line: run tag (domain/tenants.py, SourceInstance.run_tags).
RUN_TAG_FIELDS = {"tenant": "ingest/tenant", "instance": "ingest/source"}

json_console_logger = json_run_logger(RUN_TAG_FIELDS)


def log_format() -> str:
    """INGEST_LOG_FORMAT; `text` where the settings cannot be read (their own error elsewhere)."""
    try:
        return get_settings().log_format
    except ValidationError:
        return "text"


@dg.definitions
def defs() -> dg.Definitions:
    if log_format() != "json":
        return dg.Definitions()
    use_for_runs_without_logger_config(json_console_logger)
    return dg.Definitions(loggers={"console": json_console_logger})
