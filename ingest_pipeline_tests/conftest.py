"""Real parts only: a real PostgreSQL (fresh database per test), real DuckDB files, sandbox HTTP
servers on loopback, and real Dagster runs recorded in a temporary Dagster instance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from ingest_pipeline.cli.ingest_runs import InstanceOutcome, ingest_instance
from ingest_pipeline.definitions import defs as load_defs
from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.tenants import load_source_instances
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.catalog_api import CatalogApi
from ingest_pipeline.sandbox.feeds import FeedServer
from ingest_pipeline.sandbox.instances import catalog_api_instance, catalog_csv_instance
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator

API_TOKEN = "acme-secret-token-3f9a"
# A step that fails on a transient fault (a dead feed's refused connection) is retried at once
# here: the default waits 30 s, doubling (lib/step_retries.py).
os.environ.setdefault("INGEST_STEP_RETRY_DELAY_SECONDS", "0")


@pytest.fixture(scope="session")
def defs() -> dg.Definitions:
    """The code location's definitions, loaded once for the tests that only read them."""
    return load_defs()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'wh.duckdb'}"
        return
    with throwaway_database("ingest_test") as url:
        yield url


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'wh.duckdb'}"


class Env:
    """One test's settings, tenants file and Dagster instance."""

    def __init__(self, tmp_path: Path, warehouse_url: str, instance: dg.DagsterInstance):
        self.tmp_path = tmp_path
        self.tenants_file = tmp_path / "tenants.yaml"
        self.warehouse = Warehouse(warehouse_url)
        self.instance = instance
        self.defs = load_defs()
        init_warehouse(self.warehouse)

    def write_tenants(self, tenants: dict[str, list[dict[str, Any]]]) -> None:
        document = {"tenants": {t: {"sources": s} for t, s in tenants.items()}}
        self.tenants_file.write_text(yaml.safe_dump(document), encoding="utf-8")

    def ingest(self, tenant: str | None = None, source: str | None = None) -> list[InstanceOutcome]:
        """Materialize the selected instances through Dagster, one run each."""
        sync_partitions(self.instance)
        return [
            ingest_instance(self.defs, self.instance, i)
            for i in load_source_instances(self.tenants_file)
            if (tenant is None or i.tenant == tenant) and (source is None or i.name == source)
        ]

    def rows(self, sql: str) -> list[tuple]:
        return self.warehouse.fetch_all(sql)


@pytest.fixture
def env(tmp_path: Path, warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from _env(tmp_path, warehouse_url, monkeypatch)


@pytest.fixture
def duck_env(tmp_path: Path, duckdb_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from _env(tmp_path, duckdb_url, monkeypatch)


def _env(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("INGEST_WAREHOUSE_URL", url)
    monkeypatch.setenv("INGEST_TENANTS_FILE", str(tmp_path / "tenants.yaml"))
    monkeypatch.setenv("INGEST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACME_API_TOKEN", API_TOKEN)
    # dlt's retry backoff, shortened so retry tests take a second, not a minute.
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.2")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    with dg.instance_for_test() as instance:
        yield Env(tmp_path, url, instance)


def running_catalog_api() -> Iterator[CatalogApi]:
    """The catalog sandbox with the test token, on a free port until the fixture ends."""
    api = CatalogApi(API_TOKEN)
    api.server.start()
    yield api
    api.server.stop()


catalog_api = pytest.fixture(running_catalog_api, name="catalog_api")


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    feeds = FeedServer()
    feeds.server.start()
    yield feeds
    feeds.server.stop()


def rest_api_instance(api: CatalogApi, name: str = "catalog-api", **resource: Any) -> dict:
    return catalog_api_instance(api.server.url, "ACME_API_TOKEN", name, **resource)


def csv_instance(folder: Path | str, name: str = "catalog", **options: Any) -> dict:
    return catalog_csv_instance(folder, name, **options)


@pytest.fixture(scope="session")
def s3_emulator() -> Iterator[S3Emulator]:
    """One S3 emulator process for the session (for each xdist worker): starting moto's server
    takes seconds, resetting it a tenth of one."""
    with S3Emulator() as emulator:
        yield emulator


@pytest.fixture
def s3_endpoint(s3_emulator: S3Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 emulator (moto's server mode) over HTTP on a free loopback port, empty: the
    session's emulator reset (moto's own `/moto-api/reset`: no bucket, no object) for the test."""
    for name, value in EMULATOR_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3_emulator.reset()
    monkeypatch.setenv("INGEST_S3_ENDPOINT_URL", s3_emulator.endpoint_url)
    yield s3_emulator.endpoint_url


@pytest.fixture
def intake(duck_env, s3_endpoint, monkeypatch):
    """The intake service under uvicorn on a free loopback port (DuckDB warehouse)."""
    from ingest_pipeline_tests.test_intake import start_intake

    service = start_intake(duck_env, s3_endpoint, monkeypatch)
    yield service
    service.stop()


@pytest.fixture
def intake_both(env, s3_endpoint, monkeypatch):
    """The same, on DuckDB and on PostgreSQL."""
    from ingest_pipeline_tests.test_intake import start_intake

    service = start_intake(env, s3_endpoint, monkeypatch)
    yield service
    service.stop()


@pytest.fixture
def landing(env, s3_endpoint):
    """The landing bucket, sensors and runs of tenants acme and globex (both warehouses)."""
    from ingest_pipeline_tests.test_landing import Landing

    env.write_tenants({"acme": [], "globex": []})
    return Landing(env, s3_endpoint)


@pytest.fixture
def duck_landing(duck_env, s3_endpoint):
    """The same on DuckDB only."""
    from ingest_pipeline_tests.test_landing import Landing

    duck_env.write_tenants({"acme": [], "globex": []})
    return Landing(duck_env, s3_endpoint)


# -- the two tiers -------------------------------------------------------------------------
# `make test-fast` runs `-m "not integration"`: pure logic and the definitions' snapshot, no
# database, no network, no server, daemon or other Python process, no Dagster run. A test is
# `integration` when it uses one of these fixtures (directly or through another fixture), or
# when its module says `pytestmark = pytest.mark.integration` (tests that start servers,
# daemons, processes or a PostgreSQL connection themselves). A warehouse is integration on
# either backend: the DuckDB file in tmp_path is local, but it is the warehouse layer (dlt, SQL,
# locks), and a test's two backends stay in one tier.
INTEGRATION_FIXTURES = frozenset(
    {
        "warehouse_url",  # DuckDB file or a throwaway PostgreSQL database
        "duckdb_url",
        "env",  # a warehouse, a Dagster instance and Dagster runs
        "duck_env",
        "s3_endpoint",  # moto's S3 server
        "intake",  # uvicorn
        "intake_both",
        "landing",  # S3, sensors and runs
        "duck_landing",
        "catalog_api",  # sandbox HTTP servers
        "feed_server",
        "stripe",  # test_stripe_source.py: the Stripe sandbox server
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    # The slow files first: pytest-xdist hands out files in this order, so the longest one
    # starts at once beside the others instead of last, alone.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
