"""Pieces every benchmark uses: the PostgreSQL `\\copy` baseline and the peak-memory reading.

The scripts run as `python benchmarks/<name>.py`, so this sibling module imports as `_common`.
"""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path


def psql_copy_seconds(db_url: str, ddl: str, table: str, csv_path: Path, header: bool) -> float:
    """Create the table (`ddl`), then time psql's own `\\copy` of the CSV file into it."""
    subprocess.run(["psql", db_url, "-qc", ddl], check=True)
    options = "FORMAT csv, HEADER" if header else "FORMAT csv"
    started = time.perf_counter()
    copy = f"\\copy {table} FROM '{csv_path}' WITH ({options})"
    subprocess.run(["psql", db_url, "-qc", copy], check=True)
    return time.perf_counter() - started


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory of this process (or of its finished children), in MB."""
    return resource.getrusage(who).ru_maxrss / 1024
