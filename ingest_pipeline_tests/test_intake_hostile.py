"""The intake against hostile requests: odd bytes in URLs and bodies, forged floods, slow bodies.

Real HTTP against uvicorn, the S3 emulator, real DuckDB and PostgreSQL (as `test_intake`, whose
helpers these tests share). Each test fails on the intake as it was before the fix it covers.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from ingest_pipeline.intake.audit import AuditWriter, audit_row
from ingest_pipeline.intake.metrics import IntakeMetrics
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline_tests.test_intake import (
    SECRETS,
    stripe_event,
    stripe_headers,
)

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
