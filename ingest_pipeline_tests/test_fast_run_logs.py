"""Fast tier: the JSON lines of Dagster runs (lib/dagster_logs.py, defs/run_logs.py), through
Dagster's own log manager (the records a run hands its loggers) but without a run.
test_run_logs.py runs real ones."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent
from dagster._core.execution import context_creation_job
from dagster._core.execution.plan.objects import ErrorSource, StepFailureData, StepSuccessData
from dagster._core.log_manager import DagsterLogManager
from dagster._utils.error import serializable_error_info_from_exc_info

from ingest_pipeline.cli.metrics_runs import EVERY_EVENT, QUIET_CONSOLE, console_config
from ingest_pipeline.defs import run_logs
from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.dagster_logs import (
    DagsterJsonFormatter,
    json_run_logger,
    use_for_runs_without_logger_config,
)
from ingest_pipeline.lib.logging_config import configure_logging

SECRET = "tok-9f8e7d6c5b4a"
RUN_ID = "0b5f7c1e-0000-4000-8000-000000000001"
LINE_KEYS = {
    "time",
    "level",
    "logger",
    "message",
    "run_id",
    "job",
    "tenant",
    "instance",
    "step_key",
    "event_type",
}


@pytest.fixture(autouse=True)
def dagster_fallback_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test hooks into Dagster's fallback loggers is undone after it."""
    monkeypatch.setattr(
        context_creation_job,
        "default_system_loggers",
        context_creation_job.default_system_loggers,
    )
    yield


def run_tags(**extra: str) -> dict[str, str]:
    return {**SourceInstance(tenant="acme", type="csv", name="catalog").run_tags, **extra}


def log_manager(level: str = "DEBUG", **tags: str) -> DagsterLogManager:
    """Dagster's log manager of a run of `ingest_csv` with our logger, as a run builds it."""
    logger = json_run_logger(run_logs.RUN_TAG_FIELDS).logger_fn(
        dg.build_init_logger_context(logger_config={"log_level": level, "name": "dagster"})
    )
    run = dg.DagsterRun(job_name="ingest_csv", run_id=RUN_ID, tags=run_tags(**tags))
    return DagsterLogManager.create(loggers=[logger], dagster_run=run)


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_an_event_and_a_message_are_one_json_line_each_with_the_run_context(capsys, monkeypatch):
    monkeypatch.setenv("ACME_API_TOKEN", SECRET)
    manager = log_manager(**{"ingest/token_env_value": SECRET})
    success = StepSuccessData(duration_ms=40.0)
    event = DagsterEvent(
        "STEP_SUCCESS", "ingest_csv", step_key="raw_csv", event_specific_data=success
    )
    manager.log_dagster_event(logging.DEBUG, 'Finished execution of step "raw_csv".', event)
    step = manager.with_tags(step_key="raw_csv")
    step.info(f"read 2 rows with {SECRET}", extra={"fields": {"rows": 2, "run_id": "not this"}})

    out = capsys.readouterr()
    assert out.out == ""
    finished, message = lines(out.err)
    assert finished == {
        "time": finished["time"],
        "level": "DEBUG",
        "logger": "dagster",
        "message": 'Finished execution of step "raw_csv".',  # not Dagster's "job - run - ..." line
        "run_id": RUN_ID,
        "job": "ingest_csv",
        "tenant": "acme",
        "instance": "catalog",
        "step_key": "raw_csv",
        "event_type": "STEP_SUCCESS",
    }
    assert finished["time"].endswith("+00:00")
    assert message == {
        "time": message["time"],
        "level": "INFO",
        "logger": "dagster",
        "message": "read 2 rows with ***",  # a secret-named variable's value is masked
        "run_id": RUN_ID,  # a field of the call never replaces the run's
        "job": "ingest_csv",
        "tenant": "acme",
        "instance": "catalog",
        "step_key": "raw_csv",
        "event_type": None,
        "rows": 2,
    }
    assert SECRET not in out.err  # nor any other run tag


def test_the_run_event_types_are_named_as_dagster_shows_them(capsys):
    manager = log_manager()
    for event_type in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS):
        manager.log_dagster_event(logging.DEBUG, "run", DagsterEvent(event_type.value, "x"))
    # The values are the older PIPELINE_START and PIPELINE_SUCCESS.
    assert [line["event_type"] for line in lines(capsys.readouterr().err)] == [
        "RUN_START",
        "RUN_SUCCESS",
    ]


def test_a_failure_carries_its_error_and_a_run_without_tags_has_null_tenant(capsys, monkeypatch):
    monkeypatch.setenv("GLOBEX_PASSWORD", SECRET)
    try:
        raise ValueError(f"401 Unauthorized for {SECRET}")
    except ValueError:
        error = serializable_error_info_from_exc_info(sys.exc_info())
    failure = StepFailureData(error, None, ErrorSource.FRAMEWORK_ERROR)
    event = DagsterEvent(
        "STEP_FAILURE", "normalize_items", step_key="items", event_specific_data=failure
    )
    run = dg.DagsterRun(job_name="normalize_items", run_id=RUN_ID, tags={})
    logger = json_run_logger(run_logs.RUN_TAG_FIELDS).logger_fn(
        dg.build_init_logger_context(logger_config={"log_level": "DEBUG", "name": "dagster"})
    )
    manager = DagsterLogManager.create(loggers=[logger], dagster_run=run)
    manager.log_dagster_event(logging.ERROR, 'Execution of step "items" failed.', event)

    [line] = lines(capsys.readouterr().err)
    assert set(line) == LINE_KEYS | {"exc"}
    assert (line["level"], line["event_type"]) == ("ERROR", "STEP_FAILURE")
    assert line["step_key"] == "items"
    assert (line["tenant"], line["instance"]) == (None, None)
    assert line["message"] == 'Execution of step "items" failed.'
    assert "ValueError: 401 Unauthorized for ***" in line["exc"]
    assert SECRET not in json.dumps(line)


def test_the_logger_keeps_its_level_and_a_plain_record_has_null_context(capsys):
    manager = log_manager(level="WARNING")
    manager.log_dagster_event(logging.DEBUG, "start", DagsterEvent("STEP_START", "ingest_csv"))
    manager.warning("slow source")
    [line] = lines(capsys.readouterr().err)
    assert (line["level"], line["message"]) == ("WARNING", "slow source")

    # A record that never went through a run: the same keys, nulls for the run's.
    record = logging.LogRecord(
        "ingest_pipeline.x", logging.INFO, __file__, 1, "hi %s", ("x",), None
    )
    plain = json.loads(DagsterJsonFormatter(run_logs.RUN_TAG_FIELDS).format(record))
    assert set(plain) == LINE_KEYS and plain["message"] == "hi x"
    assert {plain[k] for k in LINE_KEYS - {"time", "level", "logger", "message"}} == {None}


def test_runs_without_logger_config_get_the_json_logger_once_hooked():
    logger_def = json_run_logger(run_logs.RUN_TAG_FIELDS)
    [(before, config)] = context_creation_job.default_system_loggers(None)
    assert before is dg.colored_console_logger
    assert config == {"name": "dagster", "log_level": "DEBUG"}

    use_for_runs_without_logger_config(logger_def)
    assert context_creation_job.default_system_loggers(None) == [(logger_def, config)]
    # Hooked again (definitions loaded twice in a process): replaced, not wrapped twice.
    other = json_run_logger({})
    use_for_runs_without_logger_config(other)
    assert context_creation_job.default_system_loggers(None) == [(other, config)]


def test_the_defs_module_contributes_the_logger_in_json_mode_only(monkeypatch):
    monkeypatch.delenv("INGEST_LOG_FORMAT", raising=False)
    assert run_logs.defs().loggers is None  # text: Dagster's console logger, untouched
    assert context_creation_job.default_system_loggers(None)[0][0] is dg.colored_console_logger

    monkeypatch.setenv("INGEST_LOG_FORMAT", "JSON")
    assert run_logs.defs().loggers == {"console": run_logs.json_console_logger}
    [(fallback, _)] = context_creation_job.default_system_loggers(None)
    assert fallback is run_logs.json_console_logger


def test_the_cli_logs_every_event_of_its_runs_when_they_write_json():
    @dg.op
    def noop() -> None:
        pass

    def job(loggers: dict) -> dg.JobDefinition:
        @dg.job(logger_defs=loggers)
        def one_op() -> None:
            noop()

        return one_op

    as_json = job({"console": run_logs.json_console_logger})
    assert console_config(as_json) == EVERY_EVENT
    assert console_config(job({})) == QUIET_CONSOLE  # text: warnings only, as before
    # The JSON logger takes the config written for Dagster's console logger.
    for config in (QUIET_CONSOLE, EVERY_EVENT, {}):
        assert dg.validate_run_config(as_json, config)


def test_a_message_a_run_captured_is_not_written_again_by_the_cli_handler(capsys):
    # The CLI's root handler once wrote a run's `get_dagster_logger` warning a second time,
    # without the run's context, after the run's own logger had written it.
    root = io.StringIO()
    configure_logging("json", stream=root)
    manager = log_manager()
    try:
        manager.begin_python_log_capture()
        dg.get_dagster_logger("normalize").warning("quarantined raw load 1")
        manager.end_python_log_capture()
        logging.getLogger("ingest_pipeline.cli").warning("the CLI's own line")
    finally:
        configure_logging()
    [line] = lines(capsys.readouterr().err)
    assert (line["message"], line["run_id"], line["tenant"]) == (
        "quarantined raw load 1",
        RUN_ID,
        "acme",
    )
    [own] = lines(root.getvalue())
    assert own["message"] == "the CLI's own line"
