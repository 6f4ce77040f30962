"""`normalized.intake_audit`: one row per request to the intake service.

Rows are queued in memory by the request (no database round trip on the request path) and
written by one background task in batches: every `flush_interval` seconds, or at once when
`batch_size` rows wait. The app's lifespan starts the task and, at shutdown, flushes what is
left, so a clean stop loses nothing; a crash loses at most the rows of the last interval.
While the warehouse is unreachable, rows wait (up to `max_pending`, then the oldest are
dropped and counted in `intake_audit_rows_dropped_total{reason="queue_full"}`).

Text from the outside (a tenant name out of the URL, an event id) may hold anything, and one
row the warehouse refuses must not hold up the rows behind it:
- `audit_row` cleans every text value before the row is queued: control characters (NUL,
  which PostgreSQL text refuses, CR, LF, ...) become visible `\\xNN` escapes, characters
  without a UTF-8 encoding (lone surrogates) become U+FFFD, and lengths are capped;
- a batch that still fails while the warehouse answers a probe is split in halves until the
  bad rows are alone; each is dropped, counted (`reason="refused"`) and logged by its error
  class only (never its content), and the rest are written. When the probe fails too, the
  warehouse is down: the whole batch waits, as above.

One writer per process also means one DuckDB writer per process: the writes (and the intake's
other warehouse writes) take `lock`, and each batch opens and closes its connection, so the
Dagster processes sharing the DuckDB file get their turn between batches.

Rows hold what the service decided and why. Never a secret, a token or a signature header:
reasons are written by the service, not copied from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import uuid
from collections import deque
from datetime import datetime
from typing import Any

import anyio

from ingest_pipeline.domain.entities import INTAKE_AUDIT, init_warehouse
from ingest_pipeline.intake.metrics import IntakeMetrics
from ingest_pipeline.lib.warehouse import Warehouse

log = logging.getLogger(__name__)

VERDICTS = ("accepted", "duplicate", "rejected", "error")
_MAX_TEXT = 500  # tenant names, routes and reasons are cut to this length
_MAX_KEY_TEXT = 1100  # object keys (S3: at most 1,024 bytes) and event ids, a little slack
# C0 and C1 controls and DEL: PostgreSQL text refuses NUL, and the others make audit rows (and
# anything that prints them) misleading. Lone surrogates cannot be encoded as UTF-8 at all.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
DROP_QUEUE_FULL = "queue_full"  # the warehouse stayed unreachable past `max_pending` rows
DROP_REFUSED = "refused"  # the warehouse (or the conversion to it) refuses this one row


def clean_text(value: str | None, limit: int = _MAX_TEXT) -> str | None:
    """`value` as text every warehouse stores as-is: controls escaped, surrogates replaced,
    at most `limit` characters (the cut never splits an escape)."""
    if value is None:
        return None
    value = _SURROGATE.sub("\ufffd", str(value))
    value = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    if len(value) <= limit:
        return value
    cut = value[:limit]
    escape = cut.rfind("\\x", max(0, limit - 3))
    return cut[:escape] if escape != -1 and escape + 4 > limit else cut


def audit_row(
    *,
    route: str,
    verdict: str,
    status_code: int,
    reason: str | None = None,
    tenant_id: str | None = None,
    provider: str | None = None,
    event_id: str | None = None,
    object_key: str | None = None,
    received_at: datetime,
) -> dict[str, Any]:
    """One request's row, its text cleaned (`clean_text`) so the warehouse takes it."""
    assert verdict in VERDICTS, verdict
    return {
        "audit_id": uuid.uuid4().hex,
        "received_at": received_at,
        "tenant_id": clean_text(tenant_id),
        "provider": clean_text(provider),
        "route": clean_text(route),
        "event_id": clean_text(event_id, _MAX_KEY_TEXT),
        "verdict": verdict,
        "status_code": status_code,
        "reason": clean_text(reason),
        "object_key": clean_text(object_key, _MAX_KEY_TEXT),
    }


class AuditWriter:
    def __init__(
        self,
        warehouse: Warehouse,
        metrics: IntakeMetrics,
        lock: threading.Lock | None = None,
        flush_interval: float = 0.5,
        batch_size: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self.warehouse = warehouse
        self.metrics = metrics
        self.lock = lock or threading.Lock()
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._pending: deque[dict[str, Any]] = deque()
        # Read at each scrape: the gauge is the queue's length, never a stale copy of it.
        metrics.audit_pending.set_function(lambda: len(self._pending))
        self._wake: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._table_ready = False

    # Called on the event loop (the request's task): O(1), never blocks.
    def record(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        while len(self._pending) > self.max_pending:
            self._pending.popleft()
            self.metrics.audit_dropped.labels(DROP_QUEUE_FULL).inc()
        if self._wake is not None and len(self._pending) >= self.batch_size:
            self._wake.set()

    async def run(self) -> None:
        """The background writer: until `stop()`, then a final flush of everything queued."""
        self._wake, self._stopped = asyncio.Event(), asyncio.Event()
        failures = 0
        try:
            while not self._stopping:
                # After a failure, back off (up to 16x the interval) whatever the queue length.
                event = self._stopped if failures else self._wake
                delay = self.flush_interval * (2 ** min(failures, 5))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), delay)
                self._wake.clear()
                while self._pending and not self._stopping:
                    if not await self._flush_batch():
                        failures += 1
                        break
                    failures = 0
        finally:
            await self._final_flush()

    def stop(self) -> None:
        self._stopping = True
        if self._wake is not None and self._stopped is not None:
            self._wake.set()
            self._stopped.set()

    async def _flush_batch(self) -> bool:
        """Write the next batch: True when it is done with (written, or its refused rows
        dropped), False when the warehouse is down (the batch goes back to the queue's head)."""
        batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
        unwritten = await anyio.to_thread.run_sync(self._write_or_split, batch)
        if unwritten:
            self._pending.extendleft(reversed(unwritten))
            return False
        return True

    def _write_or_split(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write `rows` (blocking), splitting a refused batch to drop only its bad rows.
        Returns the rows not written because the warehouse is down (in order)."""
        try:
            self.write(rows)
            return []
        except Exception as exc:
            self.metrics.audit_failures.inc()
            if not self._warehouse_answers():
                log.warning(
                    "intake audit: %d rows not written yet (%s)", len(rows), describe_error(exc)
                )
                return rows
            if len(rows) == 1:
                self.metrics.audit_dropped.labels(DROP_REFUSED).inc()
                # The class only: the message may quote the row, and the row is the problem.
                log.error(
                    "intake audit: dropped 1 audit row the warehouse refuses (%s)",
                    type(exc).__name__,
                )
                return []
        middle = len(rows) // 2
        first = self._write_or_split(rows[:middle])
        if first:  # the warehouse went down meanwhile: the rest waits too
            return first + rows[middle:]
        return self._write_or_split(rows[middle:])

    def _warehouse_answers(self) -> bool:
        """Whether the warehouse takes a trivial query now: a write that fails while it does
        is the rows' fault, not the warehouse's."""
        try:
            with self.lock:
                self.warehouse.fetch_all("SELECT 1")
            return True
        except Exception:
            return False

    async def _final_flush(self) -> None:
        with anyio.CancelScope(shield=True):
            for _ in range(3):
                while self._pending:
                    if not await self._flush_batch():
                        break
                if not self._pending:
                    return
                await anyio.sleep(0.5)
            log.error("intake audit: %d rows lost at shutdown", len(self._pending))

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Write rows now (blocking; the background task calls it on a worker thread)."""
        if not rows:
            return
        with self.lock:
            self.ensure_table()
            self.warehouse.upsert(INTAKE_AUDIT, rows)
        self.metrics.audit_written.inc(len(rows))

    def ensure_table(self) -> None:
        """Create the warehouse's normalized tables once per process (callers hold `lock`)."""
        if not self._table_ready:
            init_warehouse(self.warehouse)
            self._table_ready = True


def describe_error(exc: BaseException) -> str:
    """An exception's class and first line, cut short (for logs and answers)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
