"""The read API under load on PostgreSQL, beside the same SQL run directly with psycopg2.

Run: .venv/bin/python benchmarks/api_load.py [--events 1000000] [--feedback 100000]
     [--seconds 30] [--clients 16]
A fresh PostgreSQL database (INGEST_TEST_POSTGRES_URL's server): `init` (tables and the read
API's indexes), events and feedback of two tenants over 30 days written as Arrow batches with
`warehouse.upsert`, event_metrics_hour made by a real `dbt run` and leaderboard_snapshots by
SQL of the same columns (see LEADERBOARDS_SQL), `init` again (the metrics indexes), ANALYZE. The service is `ingest-pipeline serve-api` in its own process (its peak RSS
is its own). `--clients` client threads (one keep-alive connection each, stdlib http.client:
the clients' own CPU stays small beside the service's) send a mix for `--seconds`: an events
page of 100 in a 6-hour range, event metrics by hour for a day, a leaderboard, a feedback page
of 100 since a day (one platform); the requests are made before the clock starts. Then the same
number of threads run exactly the SQL the API runs for the same requests (recorded from the
API's own query functions) with psycopg2, in sessions set up as the API's (read-only,
statement timeout, UTC), for as long. Per route and for the whole mix: requests/s, p50 and p99,
the API's over the direct query's; the CPU per request of the service and of the clients.
Targets: p99 under 50 ms for a page of 100; the API under 2x the direct query (the mix's rate
ratio: with every client waiting on its answer, the ratio of the mean time per request).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pyarrow as pa
import requests

from ingest_pipeline.api import queries
from ingest_pipeline.api.reader import Reader, Result
from ingest_pipeline.domain.entities import EVENTS, FEEDBACK, init_warehouse
from ingest_pipeline.lib.dbt_env import dbt_environment
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.lib.repo_files import REPO_ROOT
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.postgres import throwaway_database

TENANTS = ("acme", "globex")
TOKENS = {"acme": "bench-acme-read-token", "globex": "bench-globex-read-token"}
AUTHORIZATION = {tenant: {"Authorization": f"Bearer {token}"} for tenant, token in TOKENS.items()}
START = date(2026, 1, 1)
DAYS = 30
BATCH = 200_000
TYPES = ("VIEW", "VIEW", "VIEW", "VIEW", "COPY", "SAVE", "FORK", "VOTE")
PLATFORMS = ("playstore", "twitter")
MARTS = ["+event_metrics_hour"]
# leaderboard_snapshots of the same columns, by SQL: dbt's model is built on the anti-gaming
# views (int_counted_views), whose `is not distinct from` self-joins are nested loops on
# PostgreSQL (~5 min for 50,000 events here): a benchmark of the API cannot wait for it. Scores
# are event counts over each window's days (an entity without events on a day is not ranked
# that day); 100 per tenant, day, window and entity type, as dbt's.
LEADERBOARDS_SQL = """
CREATE TABLE metrics.leaderboard_snapshots AS
WITH daily AS (
    SELECT tenant_id, 'item' AS entity_type, item_id AS entity_id,
           CAST(occurred_at AT TIME ZONE 'UTC' AS date) AS metric_date, count(*) AS events
    FROM normalized.events GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT tenant_id, 'author', author_id, CAST(occurred_at AT TIME ZONE 'UTC' AS date), count(*)
    FROM normalized.events GROUP BY 1, 2, 3, 4
),
windows AS (
    SELECT tenant_id, entity_type, entity_id, metric_date, events AS daily,
        sum(events) OVER (w RANGE BETWEEN INTERVAL '6 days' PRECEDING AND CURRENT ROW) AS weekly,
        sum(events) OVER (w RANGE BETWEEN INTERVAL '29 days' PRECEDING AND CURRENT ROW) AS monthly,
        sum(events) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS all_time
    FROM daily
    WINDOW w AS (PARTITION BY tenant_id, entity_type, entity_id ORDER BY metric_date)
),
scores AS (
    SELECT tenant_id, metric_date, 'daily' AS window_name, entity_type, entity_id, daily AS score
    FROM windows
    UNION ALL SELECT tenant_id, metric_date, 'weekly', entity_type, entity_id, weekly FROM windows
    UNION ALL SELECT tenant_id, metric_date, 'monthly', entity_type, entity_id, monthly FROM windows
    UNION ALL SELECT tenant_id, metric_date, 'all_time', entity_type, entity_id, all_time FROM windows
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY tenant_id, metric_date, window_name, entity_type
        ORDER BY score DESC, entity_id) AS rank
    FROM scores
)
SELECT tenant_id, metric_date, window_name, entity_type,
       CASE WHEN entity_type = 'item' THEN entity_id END AS item_id,
       CASE WHEN entity_type = 'author' THEN entity_id END AS author_id,
       CAST(rank AS integer) AS rank, CAST(score AS double precision) AS score
FROM ranked WHERE rank <= 100
"""
PAGE_ROUTES = ("events page", "feedback page")  # the target of p99 < 50 ms
P99_TARGET_MS = 50.0
OVERHEAD_TARGET = 2.0


# -- the data --------------------------------------------------------------------------------


def _times(rng: random.Random, n: int) -> pa.Array:
    start = int(datetime(START.year, START.month, START.day, tzinfo=UTC).timestamp() * 1e6)
    span = DAYS * 86_400_000_000
    return pa.array([start + rng.randrange(span) for _ in range(n)], pa.timestamp("us", tz="UTC"))


def _same(value: Any, n: int, kind: pa.DataType | None = None) -> pa.Array:
    return pa.array([value] * n, kind or pa.string())


def event_batches(total: int) -> Iterator[pa.Table]:
    rng = random.Random(42)
    now = datetime.now(UTC)
    for first in range(0, total, BATCH):
        n = min(BATCH, total - first)
        items = [int(rng.random() ** 3 * 5000) for _ in range(n)]  # a few items are popular
        yield pa.table(
            {
                "tenant_id": pa.array([TENANTS[k % 2] for k in range(first, first + n)]),
                "source_type": _same("app_events", n),
                "source_instance": _same("landing", n),
                "event_id": pa.array([f"ev-{k}" for k in range(first, first + n)]),
                "event_type": pa.array([rng.choice(TYPES) for _ in range(n)]),
                "occurred_at": _times(rng, n),
                "item_id": pa.array([f"item-{i}" for i in items]),
                "author_id": pa.array([f"author-{i % 500}" for i in items]),
                "actor_id": pa.array([f"user-{rng.randrange(20000)}" for _ in range(n)]),
                "ip": pa.array([f"10.0.0.{rng.randrange(250)}" for _ in range(n)]),
                "raw_load_id": _same("bench", n),
                "ingested_at": _same(now, n, pa.timestamp("us", tz="UTC")),
            }
        )


def feedback_batches(total: int) -> Iterator[pa.Table]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    for first in range(0, total, BATCH):
        n = min(BATCH, total - first)
        yield pa.table(
            {
                "tenant_id": pa.array([TENANTS[k % 2] for k in range(first, first + n)]),
                "source_type": pa.array([rng.choice(PLATFORMS) for _ in range(n)]),
                "source_instance": _same("main", n),
                "external_id": pa.array([f"fb-{k}" for k in range(first, first + n)]),
                "text": _same("Works well, but the sync is slow on Mondays.", n),
                "rating": pa.array([rng.randint(1, 5) for _ in range(n)], pa.int32()),
                "created_at": _times(rng, n),
                "raw_load_id": _same("bench", n),
                "ingested_at": _same(now, n, pa.timestamp("us", tz="UTC")),
            }
        )


def load(warehouse: Warehouse, events: int, feedback: int, work: Path) -> None:
    started = time.perf_counter()
    init_warehouse(warehouse)
    for batch in event_batches(events):
        warehouse.upsert(EVENTS, batch)
    for batch in feedback_batches(feedback):
        warehouse.upsert(FEEDBACK, batch)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    command = [
        str(Path(sys.executable).parent / "dbt"),
        "run",
        "--project-dir",
        str(REPO_ROOT / "dbt_metrics"),
        "--profiles-dir",
        str(REPO_ROOT / "dbt_metrics"),
        "--target-path",
        str(work / "dbt_target"),
        "--log-path",
        str(work / "dbt_logs"),
        "--quiet",
        "--vars",
        json.dumps({"min_date": str(START), "max_date": str(START + timedelta(days=DAYS))}),
        "--select",
        *MARTS,
    ]
    env = {**os.environ, **dbt_environment(warehouse)}
    subprocess.run(command, env=env, check=True, timeout=3600)
    warehouse.execute(LEADERBOARDS_SQL)
    init_warehouse(warehouse)  # the metrics tables exist now: their indexes
    warehouse.execute("ANALYZE")
    print(
        f"loaded {events:,} events and {feedback:,} feedback rows in {loaded:.1f} s "
        f"(tables and indexes), marts in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


# -- the mix ---------------------------------------------------------------------------------


class Recorder(Reader):
    """A reader that keeps the SQL it is asked, instead of running it."""

    dialect = "postgres"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Any]]] = []

    def query(self, sql: str, params: Any = ()) -> Result:
        self.calls.append((sql, list(params)))
        return Result([], [])

    def probe(self) -> None:
        pass


Request = tuple[str, str, str, dict[str, Any], tuple[str, list[Any]]]


def request(rng: random.Random, route: str) -> Request:
    """(route, tenant, path, params, (the SQL the API runs, its parameters))."""
    tenant = rng.choice(TENANTS)
    day = START + timedelta(days=rng.randrange(DAYS))
    at = datetime(day.year, day.month, day.day, tzinfo=UTC)
    recorder = Recorder()
    if route == "events page":
        start = at + timedelta(hours=rng.randrange(18))
        params = {"from": start.isoformat(), "to": (start + timedelta(hours=6)).isoformat()}
        path = "events"
        queries.list_page(
            recorder,
            queries.EVENTS_LIST,
            tenant,
            since=start,
            until=start + timedelta(hours=6),
            limit=100,
        )
    elif route == "metrics by hour":
        params = {"bucket": "hour", "from": str(day), "to": str(day + timedelta(days=1))}
        path = "metrics/events"
        queries.event_metrics(recorder, tenant, "hour", at, at + timedelta(days=1))
    elif route == "leaderboard":
        window = rng.choice(("daily", "weekly", "monthly", "all_time"))
        entity = rng.choice(("item", "author"))
        params = {"window": window, "entity": entity, "date": str(day)}
        path = "leaderboards"
        queries.leaderboard(recorder, tenant, window, entity, day, 100)
    else:
        platform = rng.choice(PLATFORMS)
        params = {"source_type": platform, "since": str(day)}
        path = "feedback"
        queries.list_page(
            recorder,
            queries.FEEDBACK_LIST,
            tenant,
            equal={"source_type": platform},
            since=at,
            limit=100,
        )
    (sql,) = recorder.calls
    return route, tenant, path, params, sql


ROUTES = ("events page", "metrics by hour", "leaderboard", "feedback page")
MIX_SIZE = 1000  # requests made ahead per client, sent in a loop


def run_clients(
    clients: int, seconds: float, send: Callable[[Any, Request], bool], session: Callable[[], Any]
) -> tuple[float, dict[str, list[float]], int]:
    """Each client sends the mix in turn until the time is up: (wall, latencies by route,
    failures). The requests are made before the clock starts (the same ones on both sides), so
    the clients' own time is only sending and reading."""
    latencies: dict[str, list[float]] = {route: [] for route in ROUTES}
    failures = [0]
    lock = threading.Lock()
    mixes = [mix(number) for number in range(clients)]
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        jobs = mixes[number]
        own: dict[str, list[float]] = {route: [] for route in ROUTES}
        failed = 0
        with contextlib.closing(session()) as connection:
            turn = 0
            while time.monotonic() < deadline:
                job = jobs[turn % len(jobs)]
                turn += 1
                started = time.perf_counter()
                ok = send(connection, job)
                own[job[0]].append(time.perf_counter() - started)
                failed += not ok
        with lock:
            for route, values in own.items():
                latencies[route] += values
            failures[0] += failed

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures[0]


def mix(number: int, size: int = MIX_SIZE) -> list[Request]:
    """Client `number`'s requests: the routes in turn, each with random values of its own."""
    rng = random.Random(number)
    return [request(rng, ROUTES[(number + turn) % len(ROUTES)]) for turn in range(size)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def summary(
    latencies: dict[str, list[float]], wall: float
) -> dict[str, tuple[float, float, float]]:
    """{route: (requests/s, p50 ms, p99 ms)}."""
    return {
        route: (
            len(values) / wall,
            statistics.median(values) * 1000 if values else float("nan"),
            percentile(values, 99) * 1000,
        )
        for route, values in latencies.items()
    }


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU seconds the processes used so far."""
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def served_api(
    warehouse_url: str, work: Path, workers: int
) -> Iterator[tuple[str, subprocess.Popen]]:
    tenants = {
        "tenants": {t: {"api": {"read_token_env": f"BENCH_{t.upper()}_READ"}} for t in TENANTS}
    }
    (work / "tenants.yaml").write_text(json.dumps(tenants), encoding="utf-8")
    port = free_port()
    service = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ingest-pipeline"),
            "serve-api",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={
            **os.environ,
            **{f"BENCH_{t.upper()}_READ": token for t, token in TOKENS.items()},
            "INGEST_WAREHOUSE_URL": warehouse_url,
            "INGEST_DATA_DIR": str(work / "data"),
            "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
            "INGEST_LOG_LEVEL": "WARNING",  # one line per request would measure the terminal
            "DAGSTER_HOME": str(work / "dagster"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            if service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve-api did not become ready: {service.stderr.read()}")
            time.sleep(0.2)
        yield url, service
    finally:
        service.terminate()
        service.communicate(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--feedback", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="serve-api --workers")
    args = parser.parse_args()
    print(
        f"PostgreSQL, {args.events:,} events and {args.feedback:,} feedback rows over "
        f"{len(TENANTS)} tenants and {DAYS} days; {args.clients} concurrent clients, "
        f"{args.seconds:g} s per side, serve-api with {args.workers} worker(s), loopback"
    )
    with tempfile.TemporaryDirectory() as tmp, throwaway_database("bench_api") as url:
        work = Path(tmp)
        warehouse = Warehouse(url)
        load(warehouse, args.events, args.feedback, work)
        with served_api(url, work, args.workers) as (base, service):
            host, port = base.removeprefix("http://").split(":")

            def keep_alive() -> http.client.HTTPConnection:
                return http.client.HTTPConnection(host, int(port), timeout=30)

            def call(connection: http.client.HTTPConnection, job: Request) -> bool:
                _, tenant, path, params, _ = job
                target = f"/v1/tenants/{tenant}/{path}?{urllib.parse.urlencode(params)}"
                connection.request("GET", target, headers=AUTHORIZATION[tenant])
                answer = connection.getresponse()
                body = answer.read()
                return answer.status == 200 and body.startswith(b'{"data":')

            server = psutil.Process(service.pid)  # and its workers, if any
            tree = [server, *server.children()]
            api_cpu, own_cpu = cpu_seconds(tree), cpu_seconds([psutil.Process()])
            api_wall, api_latencies, api_failures = run_clients(
                args.clients, args.seconds, call, keep_alive
            )
            api_cpu, own_cpu = (
                cpu_seconds(tree) - api_cpu,
                cpu_seconds([psutil.Process()]) - own_cpu,
            )
            rss = sum(peak_rss_mb(p.pid) for p in tree)

        options = "-c default_transaction_read_only=on -c statement_timeout=5000 -c TimeZone=UTC"

        def connect() -> Any:
            connection = psycopg2.connect(warehouse.postgres_dsn, options=options)
            connection.autocommit = True
            return connection

        def direct(connection: Any, job: Request) -> bool:
            sql, params = job[4]
            cursor = connection.cursor()
            cursor.execute(sql, params)
            cursor.fetchall()
            return True

        direct_wall, direct_latencies, direct_failures = run_clients(
            args.clients, args.seconds, direct, connect
        )

    api, db = summary(api_latencies, api_wall), summary(direct_latencies, direct_wall)
    print(
        f"{'route':<17} {'API req/s':>9} {'p50 ms':>7} {'p99 ms':>7}   "
        f"{'SQL req/s':>9} {'p50 ms':>7} {'p99 ms':>7}   {'p50 x':>6} {'p99 x':>6}"
    )
    verdicts = []
    for route in ROUTES:
        (rate, p50, p99), (db_rate, db_p50, db_p99) = api[route], db[route]
        print(
            f"{route:<17} {rate:9,.0f} {p50:7.1f} {p99:7.1f}   "
            f"{db_rate:9,.0f} {db_p50:7.1f} {db_p99:7.1f}   {p50 / db_p50:6.2f} {p99 / db_p99:6.2f}"
        )
        if route in PAGE_ROUTES:
            verdicts.append((f"{route} p99 < {P99_TARGET_MS:g} ms", p99 < P99_TARGET_MS))
    # The whole mix: with every client waiting on its answer, the mean time a request takes is
    # clients / requests per second (Little's law) on both sides, so the API's overhead over the
    # SQL alone is the ratio of their rates; the p50 of all requests beside it.
    api_all = [value for values in api_latencies.values() for value in values]
    db_all = [value for values in direct_latencies.values() for value in values]
    api_rate, db_rate = len(api_all) / api_wall, len(db_all) / direct_wall
    api_p50, db_p50 = statistics.median(api_all) * 1000, statistics.median(db_all) * 1000
    api_p99, db_p99 = percentile(api_all, 99) * 1000, percentile(db_all, 99) * 1000
    print(
        f"{'all':<17} {api_rate:9,.0f} {api_p50:7.1f} {api_p99:7.1f}   "
        f"{db_rate:9,.0f} {db_p50:7.1f} {db_p99:7.1f}   {api_p50 / db_p50:6.2f} "
        f"{api_p99 / db_p99:6.2f}"
    )
    print(f"API time per request over the SQL alone (rate ratio): {db_rate / api_rate:.2f}x")
    verdicts.append(
        (f"the mix under {OVERHEAD_TARGET:g}x the SQL alone", db_rate / api_rate < OVERHEAD_TARGET)
    )
    verdicts.append(
        (f"the mix p50 under {OVERHEAD_TARGET:g}x SQL", api_p50 < OVERHEAD_TARGET * db_p50)
    )
    print(
        f"CPU per API request: serve-api {api_cpu / len(api_all) * 1000:.2f} ms, "
        f"the clients {own_cpu / len(api_all) * 1000:.2f} ms"
    )
    print(
        f"serve-api peak RSS {rss:.0f} MB; failed requests: API {api_failures}, SQL {direct_failures}"
    )
    for label, ok in verdicts:
        print(f"target {label:<40} {'met' if ok else 'MISSED'}")
    if api_failures or direct_failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
