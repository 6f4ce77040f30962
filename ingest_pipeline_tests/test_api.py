"""The read API over real HTTP: `ingest-pipeline serve-api` in its own process (uvicorn on
loopback), on a real DuckDB file and a real PostgreSQL database.

Per warehouse (module-scoped, so the setup is paid once): rows written with the project's own
`warehouse.upsert` into the declared normalized tables, the metrics marts made by a real
`dbt run` of the marts the API reads (dbt's own tests are left to test_metrics.py: a whole
`dbt build` through Dagster costs ~40 s here), `init` again (the metrics indexes), and real
Dagster runs tagged as ingest runs in a real (temporary) Dagster instance that the service
reads through DAGSTER_HOME. Every route is checked against SQL on the same tables; lists are
walked to the end; the refusals are each checked; schemathesis fuzzes the whole API from its
own OpenAPI document.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg2
import pytest
import requests
import yaml

from ingest_pipeline.api import queries
from ingest_pipeline.api.reader import PostgresReader, WarehouseBusy
from ingest_pipeline.cli.metrics_runs import QUIET_CONSOLE
from ingest_pipeline.domain.entities import (
    EVENTS,
    FEEDBACK,
    ITEMS,
    PAYMENTS,
    READ_INDEXES,
    REJECTED_RECORDS,
    UPLOADS,
    init_warehouse,
)
from ingest_pipeline.lib.dbt_env import dbt_environment
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.lib.repo_files import REPO_ROOT
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.postgres import throwaway_database

pytestmark = pytest.mark.integration

TOKENS = {
    "ACME_READ_TOKEN": "acme-read-token-6d1f0b",
    "ACME_READ_TOKEN_NEXT": "acme-read-token-next-93ce",
    "GLOBEX_READ_TOKEN": "globex-read-token-2a7e",
}
ACME, GLOBEX = TOKENS["ACME_READ_TOKEN"], TOKENS["GLOBEX_READ_TOKEN"]
D = date(2026, 1, 10)  # the metrics' last built day; events on D - 1 and D
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
DBT = Path(sys.executable).parent / "dbt"
MARTS = [
    "+event_metrics_minute",
    "+event_metrics_hour",
    "+event_metrics_day",
    "+item_metrics_daily",
    "+author_metrics_daily",
    "trending_scores",
    "leaderboard_snapshots",
]


# -- the data --------------------------------------------------------------------------------


def at(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minute)


def seed(warehouse: Warehouse, now: datetime) -> None:
    """Rows of acme and globex in every table the API reads; times with ties and nulls."""
    rng = random.Random(17)
    ago = [timedelta(hours=1), timedelta(hours=5), timedelta(days=3), timedelta(days=30)]
    lineage = {"raw_load_id": "load-1"}
    items = []
    for n in range(57):
        source = [("rss", "eng-blog"), ("csv", "catalog"), ("rss", "old-feed")][n % 3]
        items.append(
            {
                "tenant_id": "acme",
                "source_type": source[0],
                "source_instance": source[1],
                "external_id": f"item-{n:03d}",
                "title": f"Item {n} — ünïcode",
                "url": f"https://example.com/{n}",
                "published_at": at(D, -n * 60),
                "updated_at": None if n % 7 == 0 else at(D, (n // 4) * 13),  # ties of 4
                **lineage,
                "ingested_at": now
                - (timedelta(days=30) if source[1] == "old-feed" else ago[n % 3]),
            }
        )
    items += [
        {
            **items[n],
            "tenant_id": "globex",
            "source_type": "rss",
            "source_instance": "news",
            "ingested_at": now,
        }
        for n in range(9)
    ]
    warehouse.upsert(ITEMS, items)
    feedback = []
    for n in range(64):
        source = ("playstore", "main") if n % 2 else ("twitter", "mentions")
        feedback.append(
            {
                "tenant_id": "acme",
                "source_type": source[0],
                "source_instance": source[1],
                "external_id": f"fb-{n:03d}",
                "author_name": "Zoë",
                "text": f"Review {n}",
                "rating": None if n % 5 == 0 else 1 + n % 5,
                "created_at": None if n % 9 == 0 else at(D, (n // 3) * 7),
                **lineage,
                "ingested_at": now - ago[n % 2],
            }
        )
    warehouse.upsert(FEEDBACK, feedback)
    kinds = ["VIEW", "VIEW", "VIEW", "COPY", "SAVE", "FORK", "VOTE"]
    events = []
    for n in range(160):
        tenant = "acme" if n < 130 else "globex"
        day = D if n % 4 < 2 else D - timedelta(days=1)
        events.append(
            {
                "tenant_id": tenant,
                "source_type": "app_events",
                "source_instance": "landing" if n % 5 else "web",
                "event_id": f"ev-{n:04d}",
                "event_type": kinds[n % len(kinds)],
                "occurred_at": at(day, rng.choice(range(0, 1440, 17))),  # ties
                "item_id": f"i{n % 6}",
                "author_id": f"a{n % 3}",
                "actor_id": f"user-{n % 11}",
                "ip": f"10.0.0.{n % 4}",
                "properties": json.dumps({"n": n, "tags": ["a", "b"]}) if n % 4 else None,
                **lineage,
                "ingested_at": now - ago[n % 3],
            }
        )
    warehouse.upsert(EVENTS, events)
    payments = [
        {
            "tenant_id": "acme",
            "payment_id": f"pi_{n:03d}",
            "author_id": f"a{n % 3}",
            "item_id": f"i{n % 6}",
            "amount": 100 * (n + 1),
            "currency": "eur",
            "status": ["succeeded", "refunded", None][n % 3],
            "created_at": at(D, n * 30),
            "updated_at": None if n % 8 == 0 else at(D, (n // 2) * 30),
        }
        for n in range(23)
    ]
    warehouse.upsert(PAYMENTS, payments)
    rejects = [
        {
            "tenant_id": "acme" if n < 30 else "globex",
            "source_type": "rss" if n % 2 else "app_events",
            "source_instance": "eng-blog" if n % 2 else "landing",
            "record_ref": f"raw:{n}",
            "reason": "published_at: not a date",
            "payload": '{"bad": true}',
            "raw_load_id": "load-1",
            "rejected_at": now - [timedelta(hours=2), timedelta(days=3), timedelta(days=10)][n % 3],
        }
        for n in range(34)
    ]
    warehouse.upsert(REJECTED_RECORDS, rejects)
    uploads = [
        {
            "upload_id": "a" * 32,
            "tenant_id": "acme",
            "kind": "events",
            "object_key": "events/acme/2026-01-10/batch.ndjson",
            "etag": "e1",
            "size_bytes": 2048,
            "status": "Completed",
            "rows_loaded": 120,
            "rows_rejected": 3,
            "created_at": at(D, 60),
            "queued_at": at(D, 61),
            "started_at": at(D, 62),
            "finished_at": at(D, 63),
            "attempts": 1,
        },
        {
            "upload_id": "b" * 32,
            "tenant_id": "acme",
            "kind": "logs",
            "object_key": "logs/acme/2026-01-10/app.log",
            "status": "Failed",
            "reason": "not UTF-8 text",
            "created_at": at(D, 70),
        },
        {
            "upload_id": "c" * 32,
            "tenant_id": "globex",
            "kind": "events",
            "object_key": "events/globex/x.ndjson",
            "status": "Created",
            "created_at": at(D, 80),
        },
    ]
    warehouse.upsert(UPLOADS, uploads)


def build_marts(warehouse: Warehouse, work: Path) -> None:
    """A real `dbt run` of the marts the API reads, for the days D - 1 and D."""
    command = [
        str(DBT),
        "run",
        "--project-dir",
        str(REPO_ROOT / "dbt_metrics"),
        "--profiles-dir",
        str(REPO_ROOT / "dbt_metrics"),
        "--target-path",
        str(work / "dbt_target"),  # never the shared target/ another dbt may be using
        "--log-path",
        str(work / "dbt_logs"),
        "--quiet",
        "--vars",
        json.dumps(
            {"min_date": str(D - timedelta(days=1)), "max_date": str(D + timedelta(days=1))}
        ),
        "--select",
        *MARTS,
    ]
    env = {**os.environ, **dbt_environment(warehouse)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def tenants_document(acme_token_env: str = "ACME_READ_TOKEN") -> dict[str, Any]:
    feed = {"type": "rss", "url": "http://127.0.0.1:9/feed.xml"}
    return {
        "tenants": {
            "acme": {
                "api": {"read_token_env": acme_token_env},
                "sources": [{**feed, "name": "eng-blog"}, {**feed, "name": "quiet-feed"}],
            },
            "globex": {
                "api": {"read_token_env": "GLOBEX_READ_TOKEN"},
                "sources": [{**feed, "name": "news"}],
            },
            "initech": {"sources": []},  # no api block: not readable
            "umbrella": {"api": {"read_token_env": "UMBRELLA_READ_TOKEN"}},  # variable unset
        }
    }


@dg.op(config_schema={"fail": dg.Field(bool, default_value=False)})
def ingest_step(context) -> None:
    if context.op_config["fail"]:
        raise RuntimeError("the feed answered 500")


@dg.job
def tagged_run() -> None:
    ingest_step()


def record_runs(instance: dg.DagsterInstance) -> None:
    """Runs tagged as ingest runs are (SourceInstance.run_tags): acme's eng-blog succeeded,
    then failed; globex's news succeeded; acme's quiet-feed never ran."""
    runs = [("acme", "eng-blog", False), ("acme", "eng-blog", True), ("globex", "news", False)]
    for tenant, name, fail in runs:
        tags = {"ingest/tenant": tenant, "ingest/instance": f"rss.{tenant}.{name}"}
        config = {"ops": {"ingest_step": {"config": {"fail": fail}}}, **QUIET_CONSOLE}
        tagged_run.execute_in_process(
            instance=instance, tags=tags, run_config=config, raise_on_error=False
        )


# -- the service -----------------------------------------------------------------------------


class Api:
    """The served API, its warehouse and its log."""

    def __init__(self, kind: str, url: str, warehouse: Warehouse, tenants: Path, log: Path):
        self.kind, self.url, self.warehouse = kind, url, warehouse
        self.tenants_file, self.log_path = tenants, log
        self.http = requests.Session()

    def get(self, path: str, token: str | None = ACME, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(self.url + path, params=params, headers=headers, timeout=30)

    def ok(self, path: str, token: str | None = ACME, **params: Any) -> Any:
        answer = self.get(path, token, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def walk(self, path: str, limit: int, token: str = ACME, **params: Any) -> list[dict]:
        """Every row of a list, page by page."""
        rows, cursor, pages = [], None, 0
        while True:
            page = self.ok(
                path, token, limit=limit, **params, **({"cursor": cursor} if cursor else {})
            )
            assert len(page["data"]) <= limit
            rows += page["data"]
            cursor, pages = page["next_cursor"], pages + 1
            if cursor is None:
                return rows
            assert len(page["data"]) == limit  # only the last page may be short
            assert pages < 1000

    def sql(self, sql: str, params: tuple = ()) -> list[dict]:
        with self.warehouse.connect() as con:
            cursor = self.warehouse.sql_dialect.execute(con, sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def log_lines(self) -> list[dict]:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@contextlib.contextmanager
def serve_api(env: dict[str, str], log: Path) -> Iterator[str]:
    """`ingest-pipeline serve-api` in its own process until the block ends; its base URL."""
    port = free_port()
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest_pipeline.cli", "serve-api", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "serve-api did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def dagster_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    home = tmp_path_factory.mktemp("dagster_home")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        record_runs(instance)
        yield instance


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def api(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dagster_instance: dg.DagsterInstance,
) -> Iterator[Api]:
    work = tmp_path_factory.mktemp(f"api_{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "duckdb":
            url = f"duckdb:///{work / 'wh.duckdb'}"
        else:
            url = stack.enter_context(throwaway_database("ingest_api"))
        warehouse = Warehouse(url)
        init_warehouse(warehouse)
        seed(warehouse, datetime.now(UTC))
        build_marts(warehouse, work)
        init_warehouse(warehouse)  # the metrics tables exist now: their indexes
        tenants = work / "tenants.yaml"
        tenants.write_text(yaml.safe_dump(tenants_document()), encoding="utf-8")
        env = {
            **os.environ,
            **TOKENS,
            "INGEST_WAREHOUSE_URL": url,
            "INGEST_TENANTS_FILE": str(tenants),
            "INGEST_DATA_DIR": str(work / "data"),
            "INGEST_LOG_FORMAT": "json",
            "INGEST_API_DUCKDB_WAIT_SECONDS": "0.5",
            "DAGSTER_HOME": str(dagster_instance.root_directory),
        }
        log = work / "api.log"
        base_url = stack.enter_context(serve_api(env, log))
        service = Api(request.param, base_url, warehouse, tenants, log)
        stack.callback(service.http.close)
        yield service


# -- expected values, computed apart from the API's code ------------------------------------


def as_json(value: Any) -> Any:
    """A value as the API writes it: timestamps in UTC with +00:00, a fraction of a second
    without trailing zeros (PostgreSQL's JSON), on both warehouses."""
    if isinstance(value, datetime):
        utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        text = utc.replace(tzinfo=None, microsecond=0).isoformat()
        if utc.microsecond:
            text += f".{utc.microsecond:06d}".rstrip("0")
        return text + "+00:00"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    return value


def expected_rows(api: Api, table: Any, where: str, params: tuple, time_column: str) -> list:
    """The table's rows (SQL), newest first by the time column (null last), ties by key desc."""
    rows = api.sql(f"SELECT * FROM {table.qualified} WHERE {where}", params)
    key = [c for c in table.key if c != "tenant_id"]

    def order(row: dict) -> tuple:
        return (row[time_column] or EARLIEST, *(row[c] for c in key))

    out = []
    for row in sorted(rows, key=order, reverse=True):
        record = {c: as_json(row[c]) for c in table.column_names}
        if "properties" in record and isinstance(record["properties"], str):
            record["properties"] = json.loads(record["properties"])
        out.append(record)
    return out


LISTS = [
    ("items", ITEMS, "updated_at", {}, ""),
    ("items", ITEMS, "updated_at", {"source_type": "rss"}, "AND source_type = 'rss'"),
    (
        "items",
        ITEMS,
        "updated_at",
        {"source_type": "rss", "source_instance": "eng-blog"},
        "AND source_type = 'rss' AND source_instance = 'eng-blog'",
    ),
    ("feedback", FEEDBACK, "created_at", {}, ""),
    ("feedback", FEEDBACK, "created_at", {"rating": 5}, "AND rating = 5"),
    (
        "feedback",
        FEEDBACK,
        "created_at",
        {"source_type": "playstore"},
        "AND source_type = 'playstore'",
    ),
    ("events", EVENTS, "occurred_at", {}, ""),
    ("events", EVENTS, "occurred_at", {"event_type": "VIEW"}, "AND event_type = 'VIEW'"),
    (
        "events",
        EVENTS,
        "occurred_at",
        {"item_id": "i2", "author_id": "a2"},
        "AND item_id = 'i2' AND author_id = 'a2'",
    ),
    ("payments", PAYMENTS, "updated_at", {}, ""),
    ("payments", PAYMENTS, "updated_at", {"status": "succeeded"}, "AND status = 'succeeded'"),
    ("rejects", REJECTED_RECORDS, "rejected_at", {}, ""),
    (
        "rejects",
        REJECTED_RECORDS,
        "rejected_at",
        {"source_type": "rss", "source_instance": "eng-blog"},
        "AND source_type = 'rss' AND source_instance = 'eng-blog'",
    ),
]


# -- lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "table", "time_column", "params", "sql"), LISTS)
def test_a_list_walked_page_by_page_is_every_row_once_in_order(
    api: Api, route: str, table: Any, time_column: str, params: dict, sql: str
):
    expected = expected_rows(api, table, f"tenant_id = 'acme' {sql}", (), time_column)
    assert expected  # the data has rows for every case
    assert api.walk(f"/v1/tenants/acme/{route}", limit=7, **params) == expected
    whole = api.ok(f"/v1/tenants/acme/{route}", limit=1000, **params)
    assert whole == {"data": expected, "next_cursor": None}
    first = api.ok(f"/v1/tenants/acme/{route}", **params)  # default limit 100
    assert first["data"] == expected[:100]


def test_time_bounds_are_inclusive_from_and_exclusive_to(api: Api):
    events = expected_rows(api, EVENTS, "tenant_id = 'acme'", (), "occurred_at")
    start, end = events[40]["occurred_at"], events[10]["occurred_at"]
    inside = [e for e in events if start <= e["occurred_at"] < end]
    assert any(e["occurred_at"] == start for e in inside)
    assert not any(e["occurred_at"] == end for e in inside)
    got = api.walk("/v1/tenants/acme/events", limit=9, **{"from": start, "to": end})
    assert got == inside
    # The same instants written with other offsets; a date is its 00:00 UTC.
    minus_five = datetime.fromisoformat(start).astimezone(timezone(timedelta(hours=-5)))
    plus_two = datetime.fromisoformat(end).astimezone(timezone(timedelta(hours=2)))
    bounds = {"from": minus_five.isoformat(), "to": plus_two.isoformat()}
    assert api.walk("/v1/tenants/acme/events", limit=50, **bounds) == inside
    on_d = [e for e in events if e["occurred_at"].startswith(D.isoformat())]
    got = api.ok(
        "/v1/tenants/acme/events", limit=1000, **{"from": str(D), "to": str(D + timedelta(days=1))}
    )
    assert got["data"] == on_d
    feedback = expected_rows(api, FEEDBACK, "tenant_id = 'acme'", (), "created_at")
    since = feedback[20]["created_at"]
    got = api.walk("/v1/tenants/acme/feedback", limit=11, since=since)
    assert got == [f for f in feedback if f["created_at"] and f["created_at"] >= since]
    items = expected_rows(api, ITEMS, "tenant_id = 'acme'", (), "updated_at")
    since = items[12]["updated_at"]
    got = api.ok("/v1/tenants/acme/items", limit=1000, updated_since=since)["data"]
    assert got == [i for i in items if i["updated_at"] and i["updated_at"] >= since]
    # Timestamps out: ISO 8601, UTC, with the offset.
    assert all(e["occurred_at"].endswith("+00:00") for e in inside)
    assert all(i["updated_at"].endswith("+00:00") for i in got)


def test_pages_do_not_change_when_newer_rows_arrive_during_a_walk(api: Api):
    route = "/v1/tenants/globex/events"
    before = api.walk(route, limit=4, token=GLOBEX)
    pages, cursor, inserted = [], None, 0
    while True:
        page = api.ok(route, GLOBEX, limit=4, **({"cursor": cursor} if cursor else {}))
        pages.append((cursor, page))
        # A writer in another process adds newer events (and one with the same time as the
        # page's last row but a smaller key, which sorts after the cursor: it must show).
        newer = datetime.now(UTC) + timedelta(minutes=inserted)
        rows = [
            {
                "tenant_id": "globex",
                "source_type": "app_events",
                "source_instance": "landing",
                "event_id": f"zz-new-{inserted}-{k}",
                "event_type": "VIEW",
                "occurred_at": newer,
                "raw_load_id": "load-2",
                "ingested_at": newer,
            }
            for k in range(3)
        ]
        api.warehouse.upsert(EVENTS, rows)
        inserted += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    walked = [row for _, page in pages for row in page["data"]]
    assert [r["event_id"] for r in walked] == [r["event_id"] for r in before]
    assert len({r["event_id"] for r in walked}) == len(walked)
    # A page asked again with its cursor, after all those inserts, is the same page.
    for cursor, page in pages[1:]:
        assert api.ok(route, GLOBEX, limit=4, cursor=cursor) == page
    after = api.walk(route, limit=50, token=GLOBEX)
    assert len(after) == len(before) + 3 * inserted


def test_an_upload_is_the_tenants_own(api: Api):
    upload = api.ok(f"/v1/tenants/acme/uploads/{'a' * 32}")
    assert upload == {
        "upload_id": "a" * 32,
        "tenant_id": "acme",
        "kind": "events",
        "object_key": "events/acme/2026-01-10/batch.ndjson",
        "size_bytes": 2048,
        "status": "Completed",
        "reason": None,
        "rows_loaded": 120,
        "rows_rejected": 3,
        "created_at": "2026-01-10T01:00:00+00:00",
        "queued_at": "2026-01-10T01:01:00+00:00",
        "started_at": "2026-01-10T01:02:00+00:00",
        "finished_at": "2026-01-10T01:03:00+00:00",
    }
    failed = api.ok(f"/v1/tenants/acme/uploads/{'b' * 32}")
    assert (failed["status"], failed["reason"], failed["rows_loaded"]) == (
        "Failed",
        "not UTF-8 text",
        None,
    )
    for upload_id in ("c" * 32, "d" * 32, "not-an-id", "A" * 32):  # globex's, unknown, garbled
        answer = api.get(f"/v1/tenants/acme/uploads/{upload_id}")
        assert answer.status_code == 404 and answer.json()["error"] == "no such upload"
    assert api.get(f"/v1/tenants/globex/uploads/{'c' * 32}", GLOBEX).json()["status"] == "Created"


# -- metrics ---------------------------------------------------------------------------------


def test_event_metrics_by_bucket(api: Api):
    columns = ", ".join(queries.EVENT_METRICS_COLUMNS)
    order = "ORDER BY bucket_start, source_type, source_instance, event_type"
    for bucket in ("minute", "hour", "day"):
        rows = api.sql(
            f"SELECT {columns} FROM metrics.event_metrics_{bucket} WHERE tenant_id = 'acme' {order}"
        )
        expected = [{k: as_json(v) for k, v in row.items()} for row in rows]
        assert expected
        if bucket == "minute":  # at most a day of minutes per request
            expected = [row for row in expected if row["metric_date"] == str(D)]
        first = D if bucket == "minute" else D - timedelta(days=1)
        got = api.ok(
            "/v1/tenants/acme/metrics/events",
            bucket=bucket,
            **{"from": str(first), "to": str(D + timedelta(days=1))},
        )
        assert got == {"data": expected}
    views = api.ok(
        "/v1/tenants/acme/metrics/events",
        bucket="hour",
        event_type="VIEW",
        source="web",
        **{"from": f"{D}T00:00:00+00:00", "to": f"{D + timedelta(days=1)}T00:00:00Z"},
    )["data"]
    rows = api.sql(
        f"SELECT {columns} FROM metrics.event_metrics_hour WHERE tenant_id = 'acme' "
        "AND event_type = 'VIEW' AND source_instance = 'web' "
        f"AND bucket_start >= %s AND bucket_start < %s {order}",
        (datetime(2026, 1, 10), datetime(2026, 1, 11)),
    )
    assert views == [{k: as_json(v) for k, v in row.items()} for row in rows] and views
    assert all(v["bucket_start"].endswith("+00:00") for v in views)
    # No bounds: the last day of hours, up to now; the data is older.
    assert api.ok("/v1/tenants/acme/metrics/events", bucket="hour") == {"data": []}


@pytest.mark.parametrize("entity", ["item", "author"])
def test_daily_item_and_author_metrics(api: Api, entity: str):
    route = f"/v1/tenants/acme/metrics/{entity}s"
    columns = queries.ITEM_METRICS_COLUMNS if entity == "item" else queries.AUTHOR_METRICS_COLUMNS
    table = f"metrics.{entity}_metrics_daily"

    def sql(where: str, params: tuple = ()) -> list[dict]:
        rows = api.sql(
            f"SELECT {', '.join(columns)} FROM {table} WHERE tenant_id = 'acme' AND {where} "
            f"ORDER BY metric_date, {entity}_id",
            params,
        )
        return [{k: as_json(v) for k, v in row.items()} for row in rows]

    latest = api.ok(route)["data"]
    assert latest == sql("metric_date = %s", (D,)) and latest
    both = sql("metric_date >= %s", (D - timedelta(days=1),))
    assert (
        api.ok(route, **{"from": str(D - timedelta(days=1)), "to": str(D + timedelta(days=1))})[
            "data"
        ]
        == both
    )
    assert len({r["metric_date"] for r in both}) == 2
    # A timestamp bound takes the days that start within [from, to).
    after = {"from": f"{D - timedelta(days=1)}T00:00:01Z", "to": str(D + timedelta(days=5))}
    assert api.ok(route, **after)["data"] == sql("metric_date = %s", (D,))
    assert api.ok(route, date=str(D - timedelta(days=1)))["data"] == sql(
        "metric_date = %s", (D - timedelta(days=1),)
    )
    days = {"from": str(D - timedelta(days=1)), "to": str(D + timedelta(days=1))}
    one = api.ok(route, **{f"{entity}_id": f"{entity[0]}1", **days})["data"]
    assert one == sql(f"{entity}_id = %s", (f"{entity[0]}1",)) and len(one) == 2
    assert len(api.ok(route, limit=2)["data"]) == 2


def test_trending_and_leaderboards(api: Api):
    columns = ", ".join(queries.TRENDING_COLUMNS)
    rows = api.sql(
        f"SELECT {columns} FROM metrics.trending_scores WHERE tenant_id = 'acme' "
        "AND metric_date = %s ORDER BY trending_score DESC, item_id",
        (D,),
    )
    expected = [{k: as_json(v) for k, v in row.items()} for row in rows]
    assert expected and api.ok("/v1/tenants/acme/trending") == {"data": expected}
    assert api.ok("/v1/tenants/acme/trending", limit=2)["data"] == expected[:2]
    earlier = api.ok("/v1/tenants/acme/trending", date=str(D - timedelta(days=1)))["data"]
    assert earlier and {r["metric_date"] for r in earlier} == {str(D - timedelta(days=1))}
    scores = [r["trending_score"] for r in expected]
    assert scores == sorted(scores, reverse=True)
    columns = ", ".join(queries.LEADERBOARD_COLUMNS)
    for window in ("daily", "weekly", "monthly", "all_time"):
        for entity in ("item", "author"):
            rows = api.sql(
                f"SELECT {columns} FROM metrics.leaderboard_snapshots WHERE tenant_id = 'acme' "
                "AND window_name = %s AND entity_type = %s AND metric_date = %s ORDER BY rank",
                (window, entity, D),
            )
            expected = [{k: as_json(v) for k, v in row.items()} for row in rows]
            board = api.ok("/v1/tenants/acme/leaderboards", window=window, entity=entity)
            assert board == {"data": expected} and expected
            assert [r["rank"] for r in board["data"]] == list(range(1, len(expected) + 1))
    top = api.ok("/v1/tenants/acme/leaderboards", window="daily", entity="item", limit=1)
    assert len(top["data"]) == 1 and top["data"][0]["rank"] == 1
    # Another tenant's boards are its own; a day without a snapshot has none.
    globex = api.ok("/v1/tenants/globex/leaderboards", GLOBEX, window="daily", entity="author")
    assert globex["data"] and {r["tenant_id"] for r in globex["data"]} == {"globex"}
    assert api.ok("/v1/tenants/acme/trending", date="2020-01-01") == {"data": []}


# -- stats -----------------------------------------------------------------------------------


def test_stats_per_source_instance(api: Api, dagster_instance: dg.DagsterInstance):
    stats = api.ok("/v1/tenants/acme/stats")
    now = datetime.fromisoformat(stats["as_of"])
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for table in (ITEMS, FEEDBACK, EVENTS):
        for row in api.sql(
            f"SELECT source_type, source_instance, ingested_at FROM {table.qualified} "
            "WHERE tenant_id = 'acme'"
        ):
            entry = expected.setdefault(
                (row["source_type"], row["source_instance"]),
                {"rows_loaded_24h": 0, "rows_loaded_7d": 0, "newest": None},
            )
            entry["rows_loaded_24h"] += row["ingested_at"] >= day
            entry["rows_loaded_7d"] += row["ingested_at"] >= week
            entry["newest"] = max(entry["newest"] or row["ingested_at"], row["ingested_at"])
    runs = {
        run.tags["ingest/instance"]: run
        for run in reversed(
            dagster_instance.get_runs(dg.RunsFilter(tags={"ingest/tenant": "acme"}))
        )
    }  # oldest first: the newest run of each instance wins
    by_instance = {(s["source_type"], s["source_instance"]): s for s in stats["data"]}
    rejects = api.sql(
        "SELECT source_type, source_instance, rejected_at FROM normalized.rejected_records "
        "WHERE tenant_id = 'acme'"
    )
    assert set(by_instance) == set(expected) | {("rss", "quiet-feed")} | {
        (r["source_type"], r["source_instance"]) for r in rejects if r["rejected_at"] >= week
    }
    for key, got in by_instance.items():
        want = expected.get(key, {"rows_loaded_24h": 0, "rows_loaded_7d": 0, "newest": None})
        assert got["rows_loaded_24h"] == want["rows_loaded_24h"], key
        assert got["rows_loaded_7d"] == want["rows_loaded_7d"], key
        assert got["newest_ingested_at"] == (want["newest"] and as_json(want["newest"])), key
        mine = [r for r in rejects if (r["source_type"], r["source_instance"]) == key]
        assert got["rows_rejected_24h"] == sum(r["rejected_at"] >= day for r in mine)
        assert got["rows_rejected_7d"] == sum(r["rejected_at"] >= week for r in mine)
        assert got["configured"] == (key in {("rss", "eng-blog"), ("rss", "quiet-feed")})
        run = runs.get(f"{key[0]}.acme.{key[1]}")
        if run is None:
            assert got["last_run"] is None, key
        else:
            assert got["last_run"]["run_id"] == run.run_id
            assert got["last_run"]["status"] == run.status.value
    blog = by_instance[("rss", "eng-blog")]
    assert blog["last_run"]["status"] == "FAILURE" and blog["last_run"]["ended_at"]
    assert blog["rows_loaded_24h"] > 0 and blog["rows_rejected_24h"] > 0
    assert by_instance[("rss", "old-feed")]["rows_loaded_7d"] == 0  # 30 days old
    assert by_instance[("rss", "old-feed")]["newest_ingested_at"] is not None
    assert by_instance[("rss", "quiet-feed")] == {
        "source_type": "rss",
        "source_instance": "quiet-feed",
        "configured": True,
        "last_run": None,
        "rows_loaded_24h": 0,
        "rows_loaded_7d": 0,
        "rows_rejected_24h": 0,
        "rows_rejected_7d": 0,
        "newest_ingested_at": None,
    }
    globex = api.ok("/v1/tenants/globex/stats", GLOBEX)["data"]
    news = next(s for s in globex if s["source_instance"] == "news")
    assert news["last_run"]["status"] == "SUCCESS" and news["rows_loaded_24h"] == 9


# -- refusals --------------------------------------------------------------------------------

UNAUTHORIZED = [
    ("no token", "acme", None),
    ("wrong token", "acme", "acme-read-token-6d1f0c"),
    ("another tenant's token", "acme", GLOBEX),
    ("a tenant that does not exist", "nobody", ACME),
    ("a tenant that does not exist, no token", "nobody", None),
    ("a tenant without an api block", "initech", ACME),
    ("a tenant whose token variable is unset", "umbrella", ACME),
    ("an empty bearer token", "acme", ""),
    ("a name no tenant can have", "ACME!", ACME),
    ("basic auth", "acme", "basic"),
]


def test_every_refused_token_gets_the_same_401(api: Api):
    answers = []
    for case, tenant, token in UNAUTHORIZED:
        if token == "basic":
            headers = {"Authorization": "Basic " + base64.b64encode(b"acme:x").decode()}
        elif token == "":
            headers = {"Authorization": "Bearer "}
        else:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
        for route in ("items", "stats", f"uploads/{'a' * 32}", "metrics/events?bucket=nope"):
            answer = api.http.get(f"{api.url}/v1/tenants/{tenant}/{route}", headers=headers)
            answers.append((case, answer))
    for case, answer in answers:
        assert answer.status_code == 401, case
        assert answer.json() == {
            "error": "unauthorized",
            "detail": "a valid bearer token of this tenant",
        }
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="ingest-pipeline"'
    # The log says why (never with a token); the answers did not.
    refused = [line for line in api.log_lines() if line.get("status") == 401]
    reasons = {line["auth_refused"] for line in refused}
    assert {"no bearer token", "token does not match"} <= reasons
    assert any("UMBRELLA_READ_TOKEN" in r for r in reasons)
    text = api.log_path.read_text()
    assert not any(token in text for token in TOKENS.values())


def test_a_token_rotated_through_the_tenants_file_needs_no_restart(api: Api):
    next_token = TOKENS["ACME_READ_TOKEN_NEXT"]
    assert api.get("/v1/tenants/acme/items", next_token).status_code == 401
    try:
        api.tenants_file.write_text(
            yaml.safe_dump(tenants_document("ACME_READ_TOKEN_NEXT")), encoding="utf-8"
        )
        assert api.get("/v1/tenants/acme/items", next_token, limit=1).status_code == 200
        assert api.get("/v1/tenants/acme/items", ACME, limit=1).status_code == 401
        # A broken edit keeps the last valid file in force.
        api.tenants_file.write_text("tenants: [not, a, mapping", encoding="utf-8")
        assert api.get("/v1/tenants/acme/items", next_token, limit=1).status_code == 200
    finally:
        api.tenants_file.write_text(yaml.safe_dump(tenants_document()), encoding="utf-8")
    assert api.get("/v1/tenants/acme/items", ACME, limit=1).status_code == 200


def cursor_of(document: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


BAD_REQUESTS = [
    ("metrics/events", {"bucket": "week"}, "bucket"),  # unknown enum
    ("metrics/events", {}, "bucket"),  # required
    ("leaderboards", {"window": "yearly", "entity": "item"}, "window"),
    ("leaderboards", {"window": "daily", "entity": "team"}, "entity"),
    ("leaderboards", {"entity": "item"}, "window"),
    ("trending", {"date": "2026-02-30"}, "date"),  # bad date
    ("trending", {"date": "10/01/2026"}, "date"),
    ("trending", {"date": "2026-01-10T00:00:00Z"}, "date"),
    ("events", {"from": "yesterday"}, "from"),
    ("events", {"from": "2026-01-10T08:00:00"}, "from"),  # no offset
    ("events", {"to": "1700000000"}, "to"),
    ("events", {"from": "0001-01-01T00:00:00+14:00"}, "from"),  # year 0 in UTC
    ("feedback", {"since": "2026-13-01"}, "since"),
    ("items", {"updated_since": ""}, "updated_since"),
    ("events", {"limit": "0"}, "limit"),
    ("events", {"limit": "1001"}, "limit"),
    ("events", {"limit": "5000"}, "limit"),
    ("events", {"limit": "ten"}, "limit"),
    ("items", {"cursor": "garbled!"}, "cursor"),
    ("items", {"cursor": "eyJub3QiOiAiYSBsaXN0In0"}, "cursor"),  # base64 JSON, not a cursor
    ("items", {"cursor": cursor_of([1, "events", "2026-01-10T00:00:00+00:00", "x"])}, "cursor"),
    ("items", {"cursor": cursor_of([1, "items", "not a time", "a", "b", "c"])}, "cursor"),
    (
        "items",
        {"cursor": cursor_of([1, "items", "2026-01-10T00:00:00+00:00", "a\u0000", "b", "c"])},
        "cursor",
    ),
    ("feedback", {"rating": "6"}, "rating"),
    ("feedback", {"rating": "0"}, "rating"),
    ("events", {"from": "2026-01-11", "to": "2026-01-10"}, "from"),
    ("items", {"source_type": "rss\u0000"}, "source_type"),
    ("items", {"source_type": "x" * 257}, "source_type"),
    ("metrics/events", {"bucket": "minute", "from": "2026-01-01", "to": "2026-01-10"}, "from"),
    ("metrics/items", {"date": "2026-01-10", "from": "2026-01-09"}, "date"),
    ("metrics/items", {"from": "2024-01-01", "to": "2026-01-01"}, "from"),
    ("metrics/authors", {"limit": "10001"}, "limit"),
    ("metrics/events", {"bucket": "hour", "to": "0001-01-01"}, "to"),  # to - a day: year 0
    ("metrics/items", {"date": "9999-12-31"}, "date"),
    ("metrics/authors", {"from": "9999-12-31T00:00:01Z"}, "from"),
    ("events", {"event_type": ["VIEW", "COPY"]}, "event_type"),  # given twice
]


@pytest.mark.parametrize(("route", "params", "param"), BAD_REQUESTS)
def test_bad_parameters_are_a_400_naming_the_parameter(
    api: Api, route: str, params: dict, param: str
):
    answer = api.get(f"/v1/tenants/acme/{route}", **params)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["error"]
    assert param in {d["param"] for d in body["detail"]}, body


# -- operations ------------------------------------------------------------------------------


def test_health_ready_metrics_and_the_openapi_document(api: Api):
    assert api.ok("/health", None) == {"status": "ok"}
    assert api.ok("/ready", None) == {"status": "ready", "checks": {"warehouse": "ok"}}
    api.ok("/v1/tenants/acme/items", limit=1)
    api.get("/v1/tenants/acme/items", "wrong")
    metrics = api.get("/metrics", None).text
    assert 'api_requests_total{route="GET /v1/tenants/{tenant}/items",status="200"}' in metrics
    assert 'api_requests_total{route="GET /v1/tenants/{tenant}/items",status="401"}' in metrics
    assert (
        'api_request_duration_seconds_bucket{le="0.05",route="GET /v1/tenants/{tenant}/items"}'
        in metrics
    )
    assert "acme" not in metrics  # labels are templates, never a tenant
    document = api.ok("/openapi.json", None)
    assert document["paths"]["/v1/tenants/{tenant}/events"]["get"]["responses"].keys() == {
        "200",
        "400",
        "401",
        "503",
    }
    assert "HTTPValidationError" not in json.dumps(document)
    assert document["components"]["securitySchemes"]["readToken"]["scheme"] == "bearer"
    assert "swagger" in api.get("/docs", None).text.lower()
    missing = api.get("/v1/nothing", None)
    assert missing.status_code == 404 and missing.json()["error"] == "not found"


def test_request_ids_and_one_json_log_line_per_request(api: Api):
    mine = api.http.get(api.url + "/health", headers={"X-Request-ID": "trace-42.a:b"})
    assert mine.headers["X-Request-ID"] == "trace-42.a:b"
    for insane in ("x" * 200, "bad id", "<script>"):
        answer = api.http.get(api.url + "/health", headers={"X-Request-ID": insane})
        assert (
            answer.headers["X-Request-ID"] != insane and len(answer.headers["X-Request-ID"]) == 32
        )
    failed = api.get("/v1/tenants/acme/events", limit=0)
    assert failed.status_code == 400 and failed.headers["X-Request-ID"]
    request_id = api.get("/v1/tenants/acme/events", limit=3).headers["X-Request-ID"]
    deadline = time.monotonic() + 10
    while not [line for line in api.log_lines() if line.get("request_id") == request_id]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (line,) = [line for line in api.log_lines() if line.get("request_id") == request_id]
    assert line["logger"] == "ingest_pipeline.api.access" and line["level"] == "INFO"
    assert (line["route"], line["tenant"], line["status"], line["method"]) == (
        "/v1/tenants/{tenant}/events",
        "acme",
        200,
        "GET",
    )
    assert line["duration_ms"] >= 0 and datetime.fromisoformat(line["time"]).tzinfo
    assert "trace-42.a:b" in {line.get("request_id") for line in api.log_lines()}


# -- the warehouse's side --------------------------------------------------------------------


def test_duckdb_held_by_a_writer_answers_503_with_retry_after(api: Api):
    if api.kind != "duckdb":
        pytest.skip("DuckDB's single-writer lock")
    writer = duckdb.connect(str(api.warehouse.duckdb_path))  # another process's write lock
    try:
        started = time.monotonic()
        busy = api.get("/v1/tenants/acme/events", limit=5)
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
        assert busy.json()["error"] == "warehouse busy, try again"
        assert time.monotonic() - started < 5  # waited briefly (0.5 s here), not for good
        assert api.get("/ready", None).status_code == 503
        # The writer was never blocked: it writes while the API keeps asking.
        writer.execute("CREATE TABLE IF NOT EXISTS main.api_probe (n INTEGER)")
        writer.execute("INSERT INTO main.api_probe VALUES (1)")
    finally:
        writer.close()
    assert api.get("/v1/tenants/acme/events", limit=5).status_code == 200
    assert "\napi_warehouse_busy_total 0.0" not in api.get("/metrics", None).text


def test_a_reader_waits_for_a_writer_and_a_writer_for_readers(api: Api):
    """Readers hammer the API while this process writes the same tables: every answer is 200
    or a 503 with Retry-After, and every write lands."""
    if api.kind != "duckdb":
        pytest.skip("DuckDB's single-writer lock")
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def read() -> None:
        session = requests.Session()
        while not stop.is_set():
            answer = session.get(
                api.url + "/v1/tenants/acme/payments",
                headers={"Authorization": f"Bearer {ACME}"},
                timeout=30,
            )
            answers.append((answer.status_code, answer.headers.get("Retry-After")))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for n in range(5):
            api.warehouse.upsert(
                PAYMENTS,
                [{"tenant_id": "initech", "payment_id": f"pi_w{n}", "status": "succeeded"}],
            )
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert {status for status, _ in answers} <= {200, 503}
    assert (200, None) in answers and all(wait for status, wait in answers if status == 503)
    assert len(api.sql("SELECT * FROM normalized.payments WHERE tenant_id = 'initech'")) == 5


def test_postgres_sessions_are_read_only_with_a_statement_timeout(api: Api):
    if api.kind != "postgres":
        pytest.skip("PostgreSQL's sessions")
    reader = PostgresReader(api.warehouse.postgres_dsn, pool_size=2, statement_timeout_seconds=0.3)
    try:
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            reader.query("CREATE TABLE normalized.api_probe (n integer)")
        with pytest.raises(WarehouseBusy):
            reader.query("SELECT pg_sleep(2)")
        assert reader.query("SHOW TimeZone").rows == [("UTC",)]
        # Connections are reused, and one that broke (server-side termination) is replaced.
        pid = reader.query("SELECT pg_backend_pid()").rows[0][0]
        assert reader.query("SELECT pg_backend_pid()").rows[0][0] == pid
        with psycopg2.connect(api.warehouse.postgres_dsn) as admin:
            admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert reader.query("SELECT 1").rows == [(1,)]
    finally:
        reader.close()


def test_init_makes_the_read_indexes_once_and_the_pages_use_them(api: Api):
    if api.kind != "postgres":
        pytest.skip("the indexes are PostgreSQL's")
    names = "SELECT schemaname || '.' || indexname AS name FROM pg_indexes WHERE indexname LIKE 'api_%%'"
    before = {row["name"] for row in api.sql(names)}
    assert before == {f"{index.table.split('.')[0]}.{index.name}" for index in READ_INDEXES}
    init_warehouse(api.warehouse)  # idempotent: nothing made again
    assert {row["name"] for row in api.sql(names)} == before
    cursor = api.ok("/v1/tenants/acme/events", limit=5)["next_cursor"]
    cases = [
        (queries.EVENTS_LIST, {"cursor": cursor}, "api_events_by_time"),
        (
            queries.EVENTS_LIST,
            {"since": datetime(2026, 1, 1, tzinfo=UTC), "until": datetime(2026, 2, 1, tzinfo=UTC)},
            "api_events_by_time",
        ),
        (
            queries.FEEDBACK_LIST,
            {"equal": {"source_type": "playstore"}},
            "api_feedback_by_type_time",
        ),
        (queries.ITEMS_LIST, {}, "api_items_by_time"),
        (
            queries.REJECTS_LIST,
            {"equal": {"source_type": "rss", "source_instance": "b"}},
            "api_rejects_by_source_time",
        ),
    ]
    with api.warehouse.connect() as con:
        cur = con.cursor()
        cur.execute("SET LOCAL enable_seqscan = off")  # the tables are small: force the choice
        for route, filters, index in cases:
            sql, params = queries.page_query(route, "acme", limit=100, **filters)
            cur.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cur.fetchall())
            assert index in plan and "Sort" not in plan, plan


# -- fuzzing ---------------------------------------------------------------------------------


def test_the_whole_api_from_its_own_openapi_document(api: Api):
    """schemathesis: generated requests to every operation, valid and invalid, with the
    tenant's token: never a 500, every answer as documented (status, content type, schema,
    headers), and every tenant route refuses a request without the token.

    Left out: "schema-valid data is accepted" (an opaque cursor is any string to the schema,
    and a garbled one must be a 400; so are `from` after `to` and a range over the maximum),
    and "schema-violating data is refused" (an array of one string is that string in a query,
    and a case generated without the token is sent with ours): BAD_REQUESTS checks the 400s."""
    import hypothesis
    import schemathesis
    from schemathesis.checks import negative_data_rejection, positive_data_acceptance
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    auth = {"Authorization": f"Bearer {ACME}"}
    settings = hypothesis.settings(
        max_examples=8,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15
    for operation in operations:
        fixed = {"tenant": "acme"} if "{tenant}" in operation.path else None
        modes = [GenerationMode.POSITIVE]
        if any(p.location.value == "query" for p in operation.iter_parameters()):
            modes.append(GenerationMode.NEGATIVE)  # a request without parameters has no bad one
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

            @settings
            @hypothesis.given(case=strategy)
            def check(case: Any) -> None:
                response = case.call_and_validate(
                    headers=auth,
                    session=api.http,
                    excluded_checks=[positive_data_acceptance, negative_data_rejection],
                )
                assert response.status_code < 500, response.text

            check()
