"""The landing sensors under the real Dagster daemon: a presigned upload ends Completed with no
one evaluating anything by hand (sensor daemon → queued run → run worker process)."""

import time

import pytest
import requests

from ingest_pipeline.domain.landing import issue_upload_url
from ingest_pipeline.settings import get_settings
from ingest_pipeline_tests.platform import running_daemon

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 240


def test_daemon_runs_the_sensor_and_the_upload_completes(duck_env, s3_endpoint, tmp_path):
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="landing")
    duck_env.write_tenants({"acme": []})
    upload = issue_upload_url(get_settings(), "acme", "logs", "api.log")
    body = b"2026-01-05T10:00:00Z INFO api started\n2026-01-05T10:00:01Z ERROR api boom\n"
    assert requests.put(upload.url, data=body, timeout=10).status_code == 200

    with running_daemon(tmp_path / "dagster_home", tmp_path / "daemon.log"):
        status = _wait_for_final_status(duck_env, upload.upload_id)
    output = (tmp_path / "daemon.log").read_text(errors="replace")[-3000:]
    assert status == ("Completed", 2, 0), output
    assert duck_env.rows("SELECT count(*) FROM normalized.log_records") == [(2,)]


def _wait_for_final_status(env, upload_id: str) -> tuple | None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    row = None
    while time.monotonic() < deadline:
        rows = env.rows(
            "SELECT status, rows_loaded, rows_rejected FROM normalized.uploads "
            f"WHERE upload_id = '{upload_id}'"
        )
        row = rows[0] if rows else None
        if row and row[0] in ("Completed", "Failed"):
            return row
        time.sleep(2)
    return row
