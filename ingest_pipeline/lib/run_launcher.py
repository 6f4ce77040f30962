"""Dagster's default run launcher, able to tell that a run's process has died.

Dagster's run monitoring ends a dead run only when its launcher can check the run worker;
the default launcher cannot, so a run whose process was killed (kill -9, OOM, a closed laptop
lid during `make dev`, a killed `ingest-pipeline ingest`) stayed STARTED until its maximum
runtime, holding a run slot and its pool slots. This launcher reads the process id that the run
recorded in its RUN_START event and reports the worker FAILED once that process is gone (or the
id now belongs to a process started after the run), so monitoring fails the run within one poll
and the run-retry daemon re-executes it.

The check only means something where the run processes live on the machine running the daemon:
the local platform (`dagster.yaml`), not a deployment whose runs start elsewhere.
"""

from __future__ import annotations

import psutil
from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher

# Not re-exported at the top level; what run launchers with health checks return.
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

# Process start times and event timestamps come from different clocks' roundings.
START_TIME_SLACK_SECONDS = 2.0


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher plus a worker health check by process id (one machine only)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        started = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1
        ).records
        event = started[0].event_log_entry if started else None
        pid = event.dagster_event.pid if event and event.dagster_event else None
        if event is None or pid is None:
            # Not started yet: the start timeout covers a run that never starts.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no start event yet")
        if process_alive_since(pid, event.timestamp):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run process PID {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run process PID {pid} is gone")


def process_alive_since(pid: int, started_at: float) -> bool:
    """Whether process `pid` runs and is the one that existed at `started_at` (a reused id
    belongs to a process created later)."""
    try:
        process = psutil.Process(pid)
        alive = process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        return alive and process.create_time() <= started_at + START_TIME_SLACK_SECONDS
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # someone else's process holds the id: it exists
        return True
