"""A throw-away PostgreSQL database on the test server, for the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg2

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The server to create databases on: INGEST_TEST_POSTGRES_URL, else the local one."""
    return os.environ.get("INGEST_TEST_POSTGRES_URL", DEFAULT_SERVER_URL)


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new, empty database for the block; its URL. Dropped afterwards, connections or not."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = server_url()
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
