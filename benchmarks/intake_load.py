"""The intake service under load: signed Stripe deliveries from concurrent clients, beside the
S3 emulator's own PUT rate for the same bodies from the same clients.

Run: .venv/bin/python benchmarks/intake_load.py [--deliveries 2000] [--clients 16]
     [--warehouse duckdb|postgres]
One S3 emulator (moto server on loopback). The service is `ingest-pipeline serve-intake` in its
own process (so its peak RSS is its own), auditing into a fresh DuckDB file or a fresh
PostgreSQL database. Baseline: the same clients PUT the same bodies straight to the emulator
(boto3 put_object). Then the same bodies go through the intake (verify, conditional PUT, audit),
and the bucket is checked: every delivery exactly one object. Loopback only; the clients are
threads of this process with one HTTP session each.
Needs the PostgreSQL server of INGEST_TEST_POSTGRES_URL for --warehouse postgres.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests
from botocore.config import Config as BotoConfig

from ingest_pipeline.intake.signatures import sign_stripe
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator

BASELINE_LABEL = "baseline emulator PUT (boto3)"
SECRET = "whsec_bench_" + uuid.uuid4().hex


def stripe_event(n: int, run: str) -> tuple[str, bytes]:
    event_id = f"evt_{run}_{n:07d}"
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "type": "payment_intent.succeeded",
        "livemode": False,
        "data": {
            "object": {
                "id": f"pi_{run}{n:07d}",
                "object": "payment_intent",
                "amount": 500 + n % 1000,
                "currency": "eur",
                "status": "succeeded",
                "metadata": {"author_id": f"author-{n % 500}", "item_id": f"item-{n % 5000}"},
            }
        },
    }
    return event_id, json.dumps(event, indent=2).encode()


def run_clients(
    jobs: list[tuple[str, bytes]], clients: int, send: Callable[[object, str, bytes], bool]
) -> tuple[float, list[float], int]:
    """Each client thread takes every `clients`-th job; (wall seconds, latencies, failures)."""

    def client(share: list[tuple[str, bytes]]) -> tuple[list[float], int]:
        latencies, failures = [], 0
        session = requests.Session()
        for event_id, body in share:
            started = time.perf_counter()
            ok = send(session, event_id, body)
            latencies.append(time.perf_counter() - started)
            failures += not ok
        session.close()
        return latencies, failures

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(client, [jobs[i::clients] for i in range(clients)]))
    wall = time.perf_counter() - started
    return wall, [x for lat, _ in results for x in lat], sum(f for _, f in results)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def report(label: str, n: int, wall: float, latencies: list[float], baseline: float | None):
    rate = n / wall
    ms = [x * 1000 for x in latencies]
    line = (
        f"{label:<34} {rate:8,.0f} req/s  p50 {statistics.median(ms):6.1f} ms  "
        f"p95 {percentile(ms, 95):6.1f} ms  p99 {percentile(ms, 99):6.1f} ms"
    )
    if baseline:
        line += f"  ({rate / baseline:.2f}x of baseline)"
    print(line, flush=True)
    return rate


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def fresh_warehouse(kind: str, work: Path) -> Iterator[str]:
    if kind == "duckdb":
        yield f"duckdb:///{work / 'bench_wh.duckdb'}"
        return
    with throwaway_database("bench") as url:
        yield url


def audit_rows(warehouse_url: str) -> int:
    from ingest_pipeline.lib.warehouse import Warehouse

    [(count,)] = Warehouse(warehouse_url).fetch_all(
        "SELECT count(*) FROM normalized.intake_audit WHERE provider = 'stripe'"
    )
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warehouse", choices=("duckdb", "postgres"), default="duckdb")
    args = parser.parse_args()
    os.environ.update({k: v for k, v in EMULATOR_CREDENTIALS.items() if k not in os.environ})
    run = uuid.uuid4().hex[:8]
    jobs = [stripe_event(n, run) for n in range(args.deliveries)]
    size = sum(len(b) for _, b in jobs) / len(jobs)
    print(
        f"{args.deliveries:,} signed Stripe deliveries (~{size:,.0f} B each), "
        f"{args.clients} concurrent clients, loopback, audit in {args.warehouse}"
    )
    with S3Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        s3 = boto3.client(
            "s3",
            endpoint_url=emulator.endpoint_url,
            config=BotoConfig(max_pool_connections=args.clients * 2),
        )
        s3.create_bucket(Bucket="landing")

        def put(_session: object, event_id: str, body: bytes) -> bool:
            s3.put_object(
                Bucket="landing",
                Key=f"baseline/{event_id}.json",
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
            return True

        wall, latencies, _ = run_clients(jobs, args.clients, put)
        baseline = report(BASELINE_LABEL, len(jobs), wall, latencies, None)

        with fresh_warehouse(args.warehouse, work) as warehouse_url:
            (work / "tenants.yaml").write_text(
                json.dumps(
                    {
                        "tenants": {
                            "bench": {
                                "intake": {
                                    "stripe_secret_env": "BENCH_STRIPE_WHSEC",
                                    "rate_limit_per_minute": 10_000_000,
                                }
                            }
                        }
                    }
                ),
                encoding="utf-8",
            )
            port = free_port()
            service = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "ingest-pipeline"),
                    "serve-intake",
                    "--port",
                    str(port),
                ],
                env={
                    **os.environ,
                    "INGEST_WAREHOUSE_URL": warehouse_url,
                    "INGEST_DATA_DIR": str(work / "data"),
                    "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
                    "INGEST_S3_ENDPOINT_URL": emulator.endpoint_url,
                    "BENCH_STRIPE_WHSEC": SECRET,
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url, service)
                signed = [(e, b, sign_stripe(b, SECRET)) for e, b in jobs]
                headers = {e: s for e, _, s in signed}

                def deliver(session: requests.Session, event_id: str, body: bytes) -> bool:
                    answer = session.post(
                        f"{url}/webhooks/stripe/bench",
                        data=body,
                        headers={
                            "Content-Type": "application/json",
                            "Stripe-Signature": headers[event_id],
                        },
                        timeout=30,
                    )
                    return answer.status_code == 200 and answer.json()["status"] == "accepted"

                wall, latencies, failures = run_clients(jobs, args.clients, deliver)
                report("intake POST /webhooks/stripe", len(jobs), wall, latencies, baseline)
                rss = peak_rss_mb(service.pid)
            finally:
                service.terminate()  # uvicorn's graceful stop: the audit queue is flushed
                _, stderr = service.communicate(timeout=60)
            landed = sum(
                page.get("KeyCount", 0)
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket="landing", Prefix="webhooks/stripe/bench/"
                )
            )
            audited = audit_rows(warehouse_url)
            print(f"{'intake peak RSS':<34} {rss:8.0f} MB")
            print(
                f"{'check':<34} {failures} failed, {landed:,} objects landed, "
                f"{audited:,} audit rows (expected {len(jobs):,} each)"
            )
            if failures or landed != len(jobs) or audited != len(jobs):
                print(stderr[-3000:], file=sys.stderr)
                sys.exit(1)


def _wait_ready(url: str, service: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if service.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the intake did not become ready: {service.stderr.read()[-2000:]}")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
