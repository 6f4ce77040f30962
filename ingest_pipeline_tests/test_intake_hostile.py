"""The intake against hostile requests: odd bytes in URLs and bodies, forged floods, slow bodies.

Real HTTP against uvicorn, the S3 emulator, real DuckDB and PostgreSQL (as `test_intake`, whose
helpers these tests share). Each test fails on the intake as it was before the fix it covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from ingest_pipeline.cli import main
from ingest_pipeline.domain.landing import MAX_KEY_BYTES, safe_filename
from ingest_pipeline.intake.audit import AuditWriter, audit_row
from ingest_pipeline.intake.metrics import IntakeMetrics
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline_tests.test_intake import (
    SECRETS,
    start_intake,
    stripe_event,
    stripe_headers,
    today,
    write_tenants,
)

pytestmark = pytest.mark.integration

GLOBEX_STRIPE = SECRETS["GLOBEX_STRIPE_WHSEC"]
UPLOAD_AUTH = {
    "Authorization": f"Bearer {SECRETS['ACME_INTAKE_TOKEN']}",
    "Content-Type": "application/json",
}


def dropped(metrics: IntakeMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("intake_audit_rows_dropped_total", {"reason": reason})
    return value or 0.0


# -- 1. the audit survives rows the warehouse refuses --------------------------------------


def test_a_nul_in_the_url_does_not_stop_the_audit(intake_both):
    """`acme%00` is an unknown tenant (404) whose audit row holds a NUL, which PostgreSQL text
    refuses: the row is cleaned before it is queued, and the rows after it are written."""
    assert intake_both.post("/webhooks/stripe/acme%00", b"{}").status_code == 404
    assert intake_both.post("/uploads/acme%00%0d%0a", b"{}").status_code == 404
    body = stripe_event("evt_after_nul")
    assert (
        intake_both.post("/webhooks/stripe/acme", body, **stripe_headers(body)).status_code == 200
    )
    rows = intake_both.audit(3)
    assert [(r["tenant_id"], r["status_code"]) for r in rows] == [
        ("acme\\x00", 404),
        ("acme\\x00\\x0d\\x0a", 404),
        ("acme", 200),
    ]
    assert all("\x00" not in (r["route"] or "") for r in rows)


def test_a_row_the_warehouse_refuses_is_dropped_alone_and_counted(env, caplog):
    """A batch that fails is split until the bad row is alone: it is dropped (counted, logged
    without its content) and every other row is written, on DuckDB and PostgreSQL."""
    metrics = IntakeMetrics()
    writer = AuditWriter(env.warehouse, metrics, flush_interval=0.05, batch_size=50)
    now = datetime.now(UTC)
    good = [
        audit_row(route="GET /health", verdict="accepted", status_code=200, received_at=now)
        for _ in range(40)
    ]
    # Rows queued without `audit_row`'s cleaning: a NUL (PostgreSQL refuses it) and a lone
    # surrogate (no UTF-8 encoding: refused on both warehouses before it reaches them).
    bad_nul = {**good[0], "audit_id": "bad-nul", "reason": "secret-ish\x00marker"}
    bad_surrogate = {**good[0], "audit_id": "bad-surrogate", "reason": "secret-ish\ud800marker"}
    for row in [*good[:13], bad_nul, *good[13:31], bad_surrogate, *good[31:]]:
        writer.record(row)
    writer.stop()  # run() then only flushes what is queued, as at shutdown
    caplog.set_level(logging.INFO)
    asyncio.run(writer.run())

    written = {r[0] for r in env.rows("SELECT audit_id FROM normalized.intake_audit")}
    assert {r["audit_id"] for r in good} <= written
    assert "bad-surrogate" not in written
    nul_dropped = 1 if env.warehouse.dialect == "postgres" else 0
    assert len(written) == 41 - nul_dropped
    assert dropped(metrics, "refused") == 1 + nul_dropped
    assert dropped(metrics, "queue_full") == 0
    assert "dropped 1 audit row" in caplog.text and "lost at shutdown" not in caplog.text
    assert "marker" not in caplog.text  # the row's content never reaches the log


def test_audit_rows_wait_while_the_warehouse_is_down():
    """An unreachable warehouse is not a bad row: nothing is split off or dropped."""
    metrics = IntakeMetrics()
    warehouse = Warehouse("postgresql://postgres@127.0.0.1:5432/no_such_db")
    writer = AuditWriter(warehouse, metrics, batch_size=10)
    now = datetime.now(UTC)
    for _ in range(25):
        writer.record(audit_row(route="r", verdict="accepted", status_code=200, received_at=now))
    assert asyncio.run(writer._flush_batch()) is False
    assert len(writer._pending) == 25
    assert dropped(metrics, "refused") == 0


# -- 2. only authenticated requests use a tenant's rate limit -------------------------------


def test_forged_requests_do_not_use_up_the_tenants_rate_limit(intake):
    write_tenants(intake.env.tenants_file, globex={"rate_limit_per_minute": 5})
    forged = stripe_event("evt_forged")
    for _ in range(20):  # four times the tenant's limit, under the per-IP limit (60)
        answer = intake.post("/webhooks/stripe/globex", forged, **stripe_headers(forged, "x"))
        assert answer.status_code == 401
    genuine = stripe_event("evt_genuine")
    answer = intake.post(
        "/webhooks/stripe/globex", genuine, **stripe_headers(genuine, GLOBEX_STRIPE)
    )
    assert (answer.status_code, answer.json()["status"]) == (200, "accepted")
    # Genuine deliveries still have the tenant's limit.
    for n in range(4):
        body = stripe_event(f"evt_genuine_{n}")
        answer = intake.post("/webhooks/stripe/globex", body, **stripe_headers(body, GLOBEX_STRIPE))
        assert answer.status_code == 200
    body = stripe_event("evt_genuine_over")
    answer = intake.post("/webhooks/stripe/globex", body, **stripe_headers(body, GLOBEX_STRIPE))
    assert answer.status_code == 429


def _post_from(url: str, source_ip: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    """POST from a chosen loopback address (the whole 127/8 is loopback on Linux)."""
    parts = urlsplit(url)
    con = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=20, source_address=(source_ip, 0)
    )
    try:
        con.request("POST", path, body=body, headers=headers)
        return con.getresponse().status
    finally:
        con.close()


def test_failed_requests_from_one_ip_have_a_limit_of_their_own(duck_env, s3_endpoint, monkeypatch):
    service = start_intake(
        duck_env, s3_endpoint, monkeypatch, unauthenticated_rate_limit_per_minute=10
    )
    try:
        forged = stripe_event("evt_forged")
        statuses = [
            service.post("/webhooks/stripe/acme", forged, **stripe_headers(forged, "x")).status_code
            for _ in range(10)
        ]
        statuses.append(
            service.post("/uploads/acme", b"{}", Authorization="Bearer guess").status_code
        )
        statuses.append(service.post("/webhooks/stripe/nobody", b"{}").status_code)  # unknown
        assert statuses == [401] * 10 + [429, 429]
        over = service.post("/webhooks/stripe/acme", forged, **stripe_headers(forged, "x"))
        assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
        assert "client" in over.json()["error"]
        # Another address is not held up by this one's failures.
        body = stripe_event("evt_other_ip")
        status = _post_from(
            service.url, "127.0.0.2", "/webhooks/stripe/acme", body, stripe_headers(body)
        )
        assert status == 200
        reasons = [r["reason"] for r in service.audit(14)]
        assert reasons[10].startswith("too many unauthenticated requests from this client")
    finally:
        service.stop()


# -- 3. patterns match the whole input -----------------------------------------------------


def test_an_event_id_with_a_trailing_newline_is_refused(intake):
    for event_id in ("evt\n", "evt_ok\n", "\nevt"):
        body = stripe_event(event_id)
        answer = intake.post("/webhooks/stripe/acme", body, **stripe_headers(body))
        assert answer.status_code == 400
        assert "event id" in answer.json()["error"]
    assert intake.landed() == {}
    assert {r["status_code"] for r in intake.audit(3)} == {400}


# -- 4. bodies are UTF-8 JSON objects ------------------------------------------------------


def test_bodies_must_be_utf8_json_objects(intake):
    utf16 = stripe_event("evt_utf16").decode().encode("utf-16")
    answer = intake.post("/webhooks/stripe/acme", utf16, **stripe_headers(utf16))
    assert answer.status_code == 400 and "UTF-8" in answer.json()["error"]
    bom = b"\xef\xbb\xbf" + stripe_event("evt_bom")
    answer = intake.post("/webhooks/stripe/acme", bom, **stripe_headers(bom))
    assert answer.status_code == 400
    array = json.dumps([{"id": "evt_in_array"}]).encode()
    answer = intake.post("/webhooks/stripe/acme", array, **stripe_headers(array))
    assert answer.status_code == 400 and "JSON object" in answer.json()["error"]
    request = json.dumps({"kind": "logs", "filename": "a.log"}).encode("utf-16")
    answer = intake.post("/uploads/acme", request, **UPLOAD_AUTH)
    assert answer.status_code == 400 and "UTF-8" in answer.json()["error"]
    assert intake.landed() == {}
    assert intake.env.rows("SELECT count(*) FROM normalized.uploads") == [(0,)]


# -- 5. upload keys stay within S3's limit -------------------------------------------------


def test_safe_filenames_are_capped_and_keep_their_extension():
    assert safe_filename("C:\\tmp\\weird name?.csv") == "weird_name_.csv"
    long = safe_filename("x" * 2000 + ".log.gz")
    assert long.endswith("x.log.gz") and len(long) == 200
    french = safe_filename("données " * 300 + ".csv", max_bytes=50)
    assert french.endswith(".csv") and len(french.encode()) == 50 and french.isascii()
    assert len(safe_filename("y" * 300, max_bytes=40)) == 40
    odd = safe_filename("a." + "b" * 500, max_bytes=30)  # no real extension: a plain cut
    assert len(odd) == 30


def test_a_2000_character_filename_makes_a_key_within_1024_bytes(intake, capsys):
    filename = "report-" + "q" * 2000 + ".csv"
    answer = intake.post(
        "/uploads/acme", json.dumps({"kind": "logs", "filename": filename}), **UPLOAD_AUTH
    )
    assert answer.status_code == 201
    key = answer.json()["key"]
    assert len(key.encode()) <= MAX_KEY_BYTES and key.endswith("q.csv")
    assert key.startswith(f"logs/acme/{today()}/")

    assert main(["upload-url", "--tenant", "acme", "--kind", "events", "--filename", filename]) == 0
    [cli_key] = [
        r[0]
        for r in intake.env.rows("SELECT object_key FROM normalized.uploads")
        if r[0].startswith("events/")
    ]
    assert len(cli_key.encode()) <= MAX_KEY_BYTES and cli_key.endswith(".csv")
    capsys.readouterr()


# -- 6. a slow body is cut off ---------------------------------------------------------------


def test_a_body_sent_one_byte_a_second_is_answered_408(duck_env, s3_endpoint, monkeypatch):
    """50 connections trickling their bodies, against a 2 s body timeout: each is answered 408
    and closed by the server about 2 s after its headers, and nothing lands."""
    service = start_intake(duck_env, s3_endpoint, monkeypatch, body_timeout_seconds=2.0)
    parts = urlsplit(service.url)
    body = stripe_event("evt_slow")
    headers = {**stripe_headers(body), "Content-Length": str(len(body)), "Host": "intake"}
    head = "POST /webhooks/stripe/acme HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    sockets = [socket.create_connection((parts.hostname, parts.port)) for _ in range(50)]
    stop = threading.Event()

    def trickle() -> None:  # one byte a second on every connection
        for n in range(len(body)):
            for sock in sockets:
                with contextlib.suppress(OSError):  # closed by the server: stop
                    sock.sendall(body[n : n + 1])
            if stop.wait(1.0):
                return

    try:
        for sock in sockets:
            sock.sendall((head + "\r\n").encode())
        started = time.monotonic()
        threading.Thread(target=trickle, daemon=True).start()
        for sock in sockets:
            sock.settimeout(10)
            answer = _read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        elapsed = time.monotonic() - started
        assert elapsed < 3.5, f"answered after {elapsed:.1f}s"
        rows = service.audit(50)
        assert [r["status_code"] for r in rows] == [408] * 50
        assert service.landed() == {}
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
        service.stop()


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):  # closed with our bytes still unread
        while chunk := sock.recv(65536):
            received += chunk
    return received
