"""INGEST_TENANTS_FILE=s3://bucket/key, against the S3 emulator over HTTP (domain/tenants_url.py).

Rules checked: `ingest-pipeline ingest` runs the instances of the object's tenants file; an
edit of the object is seen at the next look (here every time: INGEST_TENANTS_REFRESH_SECONDS=0),
an unchanged object is not written again (conditional GET), a store that cannot be reached
keeps the copy in hand in force with a warning naming the URL, and with no copy at all the
readers fail as for a missing file.
"""

from __future__ import annotations

import logging

import boto3
import pytest
import yaml

from ingest_pipeline.cli import main
from ingest_pipeline.domain.tenants import TenantsFileError, load_source_instances, tenant_names
from ingest_pipeline.domain.tenants_url import refresh_tenants_copy
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.settings import get_settings
from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.test_items_sources import write_csv

pytestmark = pytest.mark.integration

URL = "s3://config/prod/tenants.yaml"


def test_the_tenants_file_comes_from_s3_and_an_edit_is_seen(
    duck_env, s3_endpoint, tmp_path, monkeypatch, caplog
):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="config")
    shops = {}
    for name in ("shop-a", "shop-b"):
        shops[name] = tmp_path / name
        rows = "".join(f"{name}-{i},Item {i},https://x.example/{i},2026-01-02\n" for i in range(3))
        write_csv(shops[name], "items.csv", "sku,name,link,updated\n" + rows)

    def publish(*names: str) -> None:
        tenants = {"tenants": {"acme": {"sources": [csv_instance(shops[n], n) for n in names]}}}
        s3.put_object(Bucket="config", Key="prod/tenants.yaml", Body=yaml.safe_dump(tenants))

    monkeypatch.setenv("INGEST_TENANTS_FILE", URL)
    monkeypatch.setenv("INGEST_TENANTS_REFRESH_SECONDS", "0")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    publish("shop-a")
    assert main(["ingest"]) == 0
    count = "SELECT source_instance, count(*) FROM normalized.items GROUP BY 1 ORDER BY 1"
    assert duck_env.rows(count) == [("shop-a", 3)]

    publish("shop-a", "shop-b")  # another machine's edit of the one file
    assert main(["ingest"]) == 0
    assert duck_env.rows(count) == [("shop-a", 3), ("shop-b", 3)]

    settings = get_settings()
    assert settings.tenants_file.is_file() and settings.tenants_file_url == URL
    assert not refresh_tenants_copy(URL, settings.tenants_file, s3_endpoint, 0)  # unchanged

    # The store out of reach: the copy in hand stays in force, and a warning names the URL.
    monkeypatch.setenv("INGEST_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING):
        assert tenant_names(get_settings().tenants_file) == {"acme"}
    assert f"tenants file {URL} could not be read (the copy in hand stays in force)" in (
        caplog.text
    )

    # A machine that never had a copy: its readers fail as for a missing file.
    monkeypatch.setenv("INGEST_DATA_DIR", str(tmp_path / "new-machine"))
    with pytest.raises(TenantsFileError, match="does not exist"):
        load_source_instances(get_settings().tenants_file)
