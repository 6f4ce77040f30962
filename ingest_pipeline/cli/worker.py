"""`ingest-pipeline worker`: a dagster-celery worker of this code location.

It runs `dagster-celery worker start` (dagster-celery's own command) with the executor's
configuration written from the settings (lib/executors.celery_config), so the worker and the
runs' executor agree on the broker, the backend and late acknowledgement with a prefetch of one
(the file, under the data dir, is readable by its owner only: the broker's URL may hold a
password).
Its steps open the Dagster instance of DAGSTER_HOME (PostgreSQL: INGEST_DAGSTER_PG_URL) and the
warehouse of INGEST_WAREHOUSE_URL like any run process. Refused (exit 2) unless
INGEST_EXECUTOR=celery, whose settings refuse a DuckDB warehouse and a local instance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ingest_pipeline.cli.dagster_home import ensure_dagster_home
from ingest_pipeline.lib.executors import celery_config
from ingest_pipeline.settings import Settings, get_settings


def worker_command(
    settings: Settings, name: str | None, concurrency: int, queues: list[str]
) -> list[str]:
    """The `dagster-celery worker start` command line, its config file written first."""
    folder = (settings.data_dir / "celery").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "worker.yaml"
    # The broker's URL may hold a password: a file only its owner reads.
    config.touch(mode=0o600, exist_ok=True)
    config.chmod(0o600)
    config.write_text(yaml.safe_dump({"execution": {"config": celery_config(settings, True)}}))
    command = [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start"]
    command += ["-A", "dagster_celery.app", "-y", str(config)]
    command += ["-n", name] if name else []
    for queue in queues:
        command += ["-q", queue]
    return [*command, "--", f"--concurrency={concurrency}"]


def run_worker(name: str | None, concurrency: int, queues: list[str]) -> int:
    settings = get_settings()
    if settings.executor != "celery":
        print("error: INGEST_EXECUTOR is not celery: runs do not send steps to workers",
              file=sys.stderr)  # fmt: skip
        return 2
    ensure_dagster_home(settings)
    # dagster-celery starts `celery` from PATH: this virtualenv's.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    try:
        return subprocess.call(worker_command(settings, name, concurrency, queues), env=env)
    except KeyboardInterrupt:
        return 0
