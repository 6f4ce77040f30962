"""Fast tier: which faults an ingest step is retried for (transient ones only), and that every
`ingest_<type>` job retries its step with exponential backoff."""

from __future__ import annotations

import dagster as dg
import psycopg2.errors
import pytest
import requests
from dlt.common.destination.exceptions import SchemaUpdateTransientError

from ingest_pipeline.definitions import defs as load_defs
from ingest_pipeline.domain.tenants import MissingSecretError
from ingest_pipeline.lib.source_types import SOURCE_TYPES
from ingest_pipeline.lib.step_retries import ingest_retry_policy, is_transient


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


def wrapped(exc: Exception) -> Exception:
    """As dlt raises a source's error: another exception raised from it."""
    try:
        try:
            raise exc
        except Exception as inner:
            raise RuntimeError("pipeline step failed") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("refused"),
        requests.ReadTimeout("read timed out"),
        TimeoutError(),
        http_error(429),
        http_error(503),
        SchemaUpdateTransientError("csv", ["_dlt_loads"], Exception("deadlock detected")),
        psycopg2.errors.DeadlockDetected("deadlock detected"),
    ],
)
def test_network_faults_and_busy_platforms_are_transient(exc: Exception) -> None:
    assert is_transient(exc) and is_transient(wrapped(exc))


@pytest.mark.parametrize(
    "exc",
    [http_error(401), http_error(404), MissingSecretError("X"), ValueError("bad feed")],
)
def test_what_would_fail_again_is_not(exc: Exception) -> None:
    assert not is_transient(exc) and not is_transient(wrapped(exc))


def test_every_ingest_job_retries_with_exponential_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_STEP_RETRIES", "2")
    monkeypatch.setenv("INGEST_STEP_RETRY_DELAY_SECONDS", "30")
    assert ingest_retry_policy() == dg.RetryPolicy(
        max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
    defs = load_defs()
    for kind in SOURCE_TYPES.values():
        policy = defs.resolve_job_def(kind.job_name).op_retry_policy
        assert policy is not None and policy.backoff == dg.Backoff.EXPONENTIAL
    monkeypatch.setenv("INGEST_STEP_RETRIES", "0")
    assert ingest_retry_policy() is None
