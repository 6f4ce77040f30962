"""Pieces every benchmark uses: the PostgreSQL `\\copy` baseline and the peak-memory readings
(of this process, or sampled over its process tree).

The scripts run as `python benchmarks/<name>.py`, so this sibling module imports as `_common`.
"""

from __future__ import annotations

import contextlib
import resource
import subprocess
import threading
import time
from pathlib import Path

import psutil


def psql_copy_seconds(db_url: str, ddl: str, table: str, csv_path: Path, header: bool) -> float:
    """Create the table (`ddl`), then time psql's own `\\copy` of the CSV file into it."""
    subprocess.run(["psql", db_url, "-qc", ddl], check=True)
    options = "FORMAT csv, HEADER" if header else "FORMAT csv"
    started = time.perf_counter()
    copy = f"\\copy {table} FROM '{csv_path}' WITH ({options})"
    subprocess.run(["psql", db_url, "-qc", copy], check=True)
    return time.perf_counter() - started


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory of this process (or of its finished children), in MB.

    This process's own is its VmHWM where Linux has one: its ru_maxrss also counts the peak of
    the parent that started it (Python starts children by vfork and exec, and Linux carries
    the parent's high-water mark over the exec), so a worker started by a benchmark that once
    held 700 MB reported at least 700 MB whatever it used itself."""
    if who == resource.RUSAGE_SELF:
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return resource.getrusage(who).ru_maxrss / 1024


class TreePeak:
    """The peak summed RSS of this process's descendants (not of itself), in MB, sampled every
    `interval` seconds in a background thread while the block runs: a part run in child
    processes (a worker, psql, dlt's or Dagster's children) is measured as the tree it is.
    `exclude` names long-lived helpers (an S3 emulator) left out, with their own children."""

    def __init__(self, interval: float = 0.02, exclude: tuple[int, ...] = ()) -> None:
        self.interval, self.exclude, self.mb = interval, set(exclude), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        command = me.cmdline()
        while True:
            total = 0
            with contextlib.suppress(psutil.Error):
                for child in me.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        # A child forked but not yet exec'd still shows this process's pages.
                        if child.cmdline() != command and not self._excluded(child):
                            total += child.memory_info().rss
            self.mb = max(self.mb, total / 1024 / 1024)
            if self._stop.wait(self.interval):
                return

    def _excluded(self, process: psutil.Process) -> bool:
        return any(p.pid in self.exclude for p in (process, *process.parents()))
