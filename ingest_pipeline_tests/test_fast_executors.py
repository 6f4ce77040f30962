"""INGEST_EXECUTOR: the executor of every job that sets none, and the worker's command line."""

import pytest
from dagster._core.execution.retries import RetryMode
from dagster_celery.cli import get_app
from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from pydantic import ValidationError

from ingest_pipeline.cli.worker import worker_command
from ingest_pipeline.lib.executors import CELERY_SETTINGS, celery_config, run_executor
from ingest_pipeline.settings import Settings

CELERY = {
    "executor": "celery",
    "celery_broker_url": "redis://:pw@127.0.0.1:6379/0",
    "warehouse_url": "postgresql://u@127.0.0.1/wh",
    "dagster_pg_url": "postgresql+psycopg2://u@127.0.0.1/dagster",
}


def test_each_setting_names_its_executor() -> None:
    assert run_executor(Settings()).name == "in_process"  # one machine's best: the default
    assert run_executor(Settings(executor="multiprocess")).name == "multiprocess"
    assert run_executor(Settings(**CELERY)).name == "celery"


def test_celery_takes_the_broker_by_its_env_var_and_one_task_at_a_time() -> None:
    config = celery_config(Settings(**CELERY))
    assert config["broker"] == config["backend"] == {"env": "INGEST_CELERY_BROKER_URL"}
    assert config["config_source"] == CELERY_SETTINGS
    assert celery_config(Settings(**CELERY), literal=True)["broker"] == CELERY["celery_broker_url"]


def test_the_runs_celery_app_acks_late_and_takes_one_task_at_a_time(monkeypatch) -> None:
    # The executor as a run builds it: its configured config resolved, then dagster-celery's app.
    monkeypatch.setenv("INGEST_CELERY_BROKER_URL", CELERY["celery_broker_url"])
    resolved = run_executor(Settings(**CELERY)).config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    config = resolved.value["config"]
    assert config["broker"] == config["backend"] == CELERY["celery_broker_url"]
    executor = CeleryExecutor(retries=RetryMode.DISABLED, **_celery_args(config))
    _assert_acks_late_one_at_a_time(make_app(executor.app_args()).conf)


def test_the_workers_celery_app_acks_late_and_takes_one_task_at_a_time(tmp_path) -> None:
    # The worker's app as dagster-celery's command builds it from the file it is given.
    worker_command(Settings(**CELERY, data_dir=tmp_path), "w1", 1, ["dagster"])
    conf = get_app(str(tmp_path / "celery" / "worker.yaml")).conf
    assert conf.broker_url == CELERY["celery_broker_url"]
    _assert_acks_late_one_at_a_time(conf)


def _celery_args(config: dict) -> dict:
    return {key: config[key] for key in ("broker", "backend", "config_source")}


def _assert_acks_late_one_at_a_time(conf) -> None:
    # A lost worker's step is delivered again; an idle worker never waits behind a busy one.
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"celery_broker_url": ""}, "INGEST_CELERY_BROKER_URL must name the broker"),
        ({"warehouse_url": ""}, "must name a PostgreSQL warehouse"),  # the DuckDB default
        ({"dagster_pg_url": ""}, "INGEST_DAGSTER_PG_URL must be set"),
    ],
)
def test_celery_is_refused_without_what_every_worker_reaches(change, why) -> None:
    with pytest.raises(ValidationError, match=why):
        Settings(**{**CELERY, **change})


def test_the_worker_runs_dagster_celerys_own_command(tmp_path) -> None:
    settings = Settings(**CELERY, data_dir=tmp_path)
    command = worker_command(settings, "w1@%h", 2, ["dagster", "tenants"])
    assert command[1:] == [
        *("worker", "start", "-A", "dagster_celery.app"),
        *("-y", str(tmp_path / "celery" / "worker.yaml")),
        # dagster-celery adds @<host> itself: w1@host, not w1@host@host
        *("-n", "w1", "-q", "dagster", "-q", "tenants", "--", "--concurrency=2"),
    ]
    config = tmp_path / "celery" / "worker.yaml"
    assert config.stat().st_mode & 0o077 == 0  # the broker URL may hold a password
