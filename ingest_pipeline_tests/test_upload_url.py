"""`ingest-pipeline upload-url`: a presigned PUT on the S3 emulator, recorded as Created."""

import boto3
import pytest
import requests

from ingest_pipeline.cli import main
from ingest_pipeline.domain.landing import parse_object_key, safe_filename


@pytest.fixture
def landing(env, s3_endpoint):
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="landing")
    env.write_tenants({"acme": []})
    return env


def test_presigned_upload_lands_in_the_bucket_and_is_recorded(landing, s3_endpoint, capsys):
    assert (
        main(
            [
                "upload-url",
                "--tenant",
                "acme",
                "--kind",
                "logs",
                "--filename",
                "../app server.log.gz",
                "--expires",
                "600",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    url = out.out.strip()
    assert url.startswith(s3_endpoint + "/landing/logs/acme/")
    response = requests.put(url, data=b"2026-01-05T10:00:00Z INFO api up\n", timeout=10)
    assert response.status_code == 200

    [(upload_id, key, status, created_at)] = landing.rows(
        "SELECT upload_id, object_key, status, created_at FROM normalized.uploads"
    )
    assert status == "Created" and created_at is not None
    assert key.endswith(f"/{upload_id}-app_server.log.gz") and f"upload_id={upload_id}" in out.err
    body = boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket="landing", Key=key)
    assert body["Body"].read() == b"2026-01-05T10:00:00Z INFO api up\n"
    assert parse_object_key(key).tenant == "acme"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody", "--kind", "logs"], "not in the tenants file"),
        (["--tenant", "acme", "--kind", "videos"], "kind must be one of"),
        (["--tenant", "acme", "--kind", "logs", "--expires", "0"], "expires must be"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(landing, capsys, args, message):
    assert main(["upload-url", *args]) == 2
    assert message in capsys.readouterr().err
    assert landing.rows("SELECT count(*) FROM normalized.uploads") == [(0,)]


def test_keys_outside_the_layout_are_recognised():
    assert parse_object_key("events/acme/2026/batch.ndjson").kind == "events"
    assert parse_object_key("videos/acme/x") is None
    assert parse_object_key("logs/acme/") is None
    assert safe_filename("C:\\tmp\\weird name?.csv") == "weird_name_.csv"
