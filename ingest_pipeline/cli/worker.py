"""`ingest-pipeline worker`: a dagster-celery worker of this code location.

It runs `dagster-celery worker start` (dagster-celery's own command) with the executor's
configuration written from the settings (lib/executors.celery_config), so the worker and the
runs' executor agree on the broker, the backend and late acknowledgement with a prefetch of one
(the file, under the data dir, is readable by its owner only: the broker's URL may hold a
password).
Its steps open the Dagster instance of DAGSTER_HOME (PostgreSQL: INGEST_DAGSTER_PG_URL) and the
warehouse of INGEST_WAREHOUSE_URL like any run process. Refused (exit 2) unless
INGEST_EXECUTOR=celery, whose settings refuse a DuckDB warehouse and a local instance.

Stopping: dagster-celery's command starts `celery` as its child and forwards no signal (a
SIGTERM to it left the celery worker running, orphaned). So the command runs in a process group
of its own, and SIGINT, SIGTERM or SIGHUP to `ingest-pipeline worker` reaches the whole group as
SIGINT, as Ctrl-C in a terminal does: celery's warm shutdown (the step in hand is finished, a
second signal cuts it short). `ingest-pipeline worker` returns once no process of the group is
left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import psutil
import yaml

from ingest_pipeline.cli.dagster_home import ensure_dagster_home
from ingest_pipeline.lib.executors import celery_config
from ingest_pipeline.settings import Settings, get_settings


def worker_command(
    settings: Settings, name: str | None, concurrency: int, queues: list[str]
) -> list[str]:
    """The `dagster-celery worker start` command line, its config file written first. `name` is
    the node name before `@`: dagster-celery adds `@<host>` (w1 becomes w1@host)."""
    folder = (settings.data_dir / "celery").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "worker.yaml"
    # The broker's URL may hold a password: a file only its owner reads.
    config.touch(mode=0o600, exist_ok=True)
    config.chmod(0o600)
    config.write_text(yaml.safe_dump({"execution": {"config": celery_config(settings, True)}}))
    command = [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start"]
    command += ["-A", "dagster_celery.app", "-y", str(config)]
    command += ["-n", name.partition("@")[0]] if name else []
    for queue in queues:
        command += ["-q", queue]
    return [*command, "--", f"--concurrency={concurrency}"]


def run_worker(name: str | None, concurrency: int, queues: list[str]) -> int:
    """Run the worker until it stops; a stop signal is passed on to all its processes."""
    settings = get_settings()
    if settings.executor != "celery":
        print("error: INGEST_EXECUTOR is not celery: runs do not send steps to workers",
              file=sys.stderr)  # fmt: skip
        return 2
    ensure_dagster_home(settings)
    # dagster-celery starts `celery` from PATH: this virtualenv's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = worker_command(settings, name, concurrency, queues)
    process = subprocess.Popen(command, env=env, process_group=0)
    stopped = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopped
        stopped = True
        _signal_group(process.pid, signal.SIGINT)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    code = process.wait()
    while _group_alive(process.pid):  # celery finishing its step after dagster-celery ended
        time.sleep(0.5)
    return 0 if stopped else code


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    """A live process in the group (an orphan's zombie no one reaps does not count)."""
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False
