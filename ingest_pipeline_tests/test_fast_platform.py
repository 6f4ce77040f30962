"""Fast tier: settings validation, the local run launcher's process check and webhook
signatures (no database, no server, no Dagster run)."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from ingest_pipeline.intake.signatures import (
    sign_intercom,
    sign_stripe,
    verify_intercom,
    verify_stripe,
)
from ingest_pipeline.lib.run_launcher import START_TIME_SLACK_SECONDS, process_alive_since
from ingest_pipeline.settings import Settings

PG = "postgresql://postgres@db:5432/warehouse"


@pytest.fixture(autouse=True)
def no_ingest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("INGEST_")]:
        monkeypatch.delenv(name)


def test_production_refuses_each_unsafe_default_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="production", warehouse_url="duckdb:///w.duckdb", tenants_file=tmp_path / "t")
    message = str(refused.value)
    assert "production mode refuses unsafe defaults" in message
    assert "INGEST_WAREHOUSE_URL must name a PostgreSQL warehouse" in message
    assert f"INGEST_TENANTS_FILE ({tmp_path / 't'}) does not exist" in message
    assert "INGEST_DAGSTER_PG_URL must be set" in message


def test_production_with_everything_set_and_development_defaults(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants: {}\n")
    done = Settings(env="production", warehouse_url=PG, tenants_file=tenants, dagster_pg_url=PG)
    assert done.resolved_warehouse_url == PG
    with pytest.raises(ValidationError, match="INGEST_DAGSTER_PG_URL"):
        Settings(env="production", warehouse_url=PG, tenants_file=tenants)
    dev = Settings(data_dir=tmp_path / "data")
    assert (
        dev.resolved_warehouse_url == f"duckdb:///{(tmp_path / 'data').resolve()}/warehouse.duckdb"
    )


def test_a_tenants_file_url_is_read_through_a_local_copy(tmp_path: Path) -> None:
    url = "s3://config/prod/tenants.yaml"
    settings = Settings(tenants_file=url, data_dir=tmp_path)
    assert settings.tenants_file_url == url
    assert settings.tenants_file == tmp_path / "tenants" / "s3" / "config" / "prod" / "tenants.yaml"
    # Production asks for no file on this disk: the copy comes from the store.
    Settings(env="production", warehouse_url=PG, tenants_file=url, dagster_pg_url=PG)
    for bad in ("s3://config", "s3://config/", "s3:///tenants.yaml"):
        with pytest.raises(ValidationError, match="is not an s3://bucket/key URL"):
            Settings(tenants_file=bad)
    assert Settings(tenants_file=tmp_path / "t.yaml").tenants_file_url == ""


@pytest.mark.parametrize(
    "field", ["landing_objects_per_tick", "landing_objects_per_run", "duckdb_lock_wait_seconds"]
)
def test_settings_refuse_zero_where_a_positive_number_is_needed(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: 0})


def test_the_current_process_is_alive_since_it_started() -> None:
    created = psutil.Process().create_time()
    assert process_alive_since(os.getpid(), time.time())
    assert process_alive_since(os.getpid(), created)
    # An id whose process was created after the run started is a reused id, not the run.
    assert not process_alive_since(os.getpid(), created - START_TIME_SLACK_SECONDS - 5)


def test_a_finished_process_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while (
        psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert not process_alive_since(child.pid, time.time())  # exited, not yet reaped
    child.wait()
    assert not process_alive_since(child.pid, time.time())  # gone


def test_signature_headers_are_the_documented_hmacs() -> None:
    body = b'{"id": "evt_1"}'
    sha1 = hmac.new(b"s", body, hashlib.sha1).hexdigest()
    assert sign_intercom(body, "s") == f"sha1={sha1}"
    assert verify_intercom(body, f"SHA1={sha1.upper()}", "s")
    sha256 = hmac.new(b"whsec", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert sign_stripe(body, "whsec", 1_800_000_000) == f"t=1800000000,v1={sha256}"


def test_stripe_checks_the_signature_before_the_time() -> None:
    body, now = b"{}", 1_800_000_000
    old_forgery = verify_stripe(body, sign_stripe(body, "wrong", now - 9999), ["whsec"], now=now)
    assert (old_forgery.ok, old_forgery.status, old_forgery.reason) == (
        False,
        401,
        "signature does not match",
    )
    assert verify_stripe(body, sign_stripe(body, "whsec", now), ["", "whsec"], now=now)
    tolerant = verify_stripe(body, sign_stripe(body, "whsec", now - 50), "whsec", now, tolerance=10)
    assert (tolerant.status, tolerant.reason) == (400, "stale timestamp (more than 10 s from now)")
    assert "t is not a number" in verify_stripe(body, "t=x,v1=ab", "whsec", now=now).reason


def test_dev_env_passes_where_steps_run_to_a_worker_shell_and_prints_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest_pipeline.cli.dev import print_settings, shared_with_workers, write_env_file

    environ = {
        "INGEST_EXECUTOR": "celery",
        "INGEST_CELERY_BROKER_URL": "pyamqp://ingest:s3cr3t-pw@127.0.0.1:5672//",
        "INGEST_CELERY_BACKEND_URL": "",  # not set: the broker keeps the results
        "INGEST_DAGSTER_PG_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster",
        "HOME": "/root",
    }
    shared = shared_with_workers(environ)
    assert shared == {
        "INGEST_EXECUTOR": "celery",
        "INGEST_CELERY_BROKER_URL": "pyamqp://ingest:s3cr3t-pw@127.0.0.1:5672//",
        "INGEST_DAGSTER_PG_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster",
    }
    env_file = write_env_file(tmp_path / "dev.env", shared)
    assert "INGEST_CELERY_BROKER_URL=pyamqp://ingest:s3cr3t-pw@127.0.0.1:5672//" in (
        env_file.read_text()
    )  # the file a worker's shell sources has it whole
    print_settings(shared, env_file)
    printed = capsys.readouterr().out
    assert "s3cr3t-pw" not in printed
    assert "INGEST_CELERY_BROKER_URL=pyamqp://ingest:***@127.0.0.1:5672//" in printed
    assert "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster" in printed  # no password
