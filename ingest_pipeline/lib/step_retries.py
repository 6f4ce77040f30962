"""When an ingest step runs again: a transient fault is retried by the `ingest_<type>` jobs'
RetryPolicy, with exponential backoff and jitter; any other fault fails the step at once.

Transient: the network (connection refused or reset, a timeout), an HTTP 408, 425, 429 or 5xx
still failing after dlt's own request retries, what dlt itself calls transient (a schema update
that lost a deadlock against another instance's load into the same dataset: two instances of a
type loading at once on PostgreSQL), and a PostgreSQL transaction rolled back for a deadlock or
a serialization failure. Anything else (a 401/403 or other 4xx, a missing
secret, an invalid tenants file, a parse error) would fail the same way again: the step raises
`dg.Failure(allow_retries=False)`, which skips the policy. `INGEST_STEP_RETRIES` (2) and
`INGEST_STEP_RETRY_DELAY_SECONDS` (30, doubling per attempt) are read when the definitions load.
"""

from __future__ import annotations

import socket

import dagster as dg
import psycopg2.extensions
import requests
from dlt.common.exceptions import TransientException

from ingest_pipeline.settings import get_settings

TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    TransientException,  # dlt's own: e.g. SchemaUpdateTransientError
    psycopg2.extensions.TransactionRollbackError,  # deadlock detected, serialization failure
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is a fault of the network or a platform's
    momentary state (see the module's rules)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TRANSIENT_ERRORS) or _transient_status(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_status(exc: BaseException) -> bool:
    response = getattr(exc, "response", None) if isinstance(exc, requests.HTTPError) else None
    status = getattr(response, "status_code", None)
    return isinstance(status, int) and (status in TRANSIENT_HTTP_STATUSES or status >= 500)


def ingest_retry_policy() -> dg.RetryPolicy | None:
    """The ingest steps' policy under the current settings; None with INGEST_STEP_RETRIES=0."""
    settings = get_settings()
    if settings.step_retries == 0:
        return None
    return dg.RetryPolicy(
        max_retries=settings.step_retries,
        delay=settings.step_retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )
