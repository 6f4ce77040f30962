"""INGEST_EXECUTOR: the executor of every job that sets none, and the worker's command line."""

import pytest
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
    assert CELERY_SETTINGS["task_acks_late"] and CELERY_SETTINGS["worker_prefetch_multiplier"] == 1
    assert celery_config(Settings(**CELERY), literal=True)["broker"] == CELERY["celery_broker_url"]


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
        *("-n", "w1@%h", "-q", "dagster", "-q", "tenants", "--", "--concurrency=2"),
    ]
    config = tmp_path / "celery" / "worker.yaml"
    assert config.stat().st_mode & 0o077 == 0  # the broker URL may hold a password
