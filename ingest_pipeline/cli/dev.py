"""`ingest-pipeline dev` (what `make dev` runs): the whole local system, until Ctrl-C.

It starts, on loopback only: the S3 emulator (unless INGEST_S3_ENDPOINT_URL names a store),
every sandbox of the demo world with the demo tenants file (rendered from
tenants.example.yaml), the intake service, the read API (its own process: it opens a DuckDB
warehouse read-only, which one process cannot do beside its own writer), and `dagster dev`
(webserver, daemon, code server).
The settings it uses are printed once and written to `<data dir>/dev.env` as KEY=VALUE lines,
so another shell can `set -a; . .data/dev.env; set +a` and use the CLI and curl against it.
Each part listens on its documented default port unless that port is taken (then on a free
one, and dev.env says which). Ctrl-C (or SIGTERM) stops every part.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from ingest_pipeline.cli.dagster_home import RANGE_PLANNING_ENV, ensure_dagster_home
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.lib.repo_files import REPO_ROOT
from ingest_pipeline.sandbox.demo_world import port_or_free, start_demo_world
from ingest_pipeline.settings import Settings, get_settings

WEBSERVER_PORT = 3000
# Where the steps run (INGEST_EXECUTOR=celery: the broker, the results, Dagster's instance on
# PostgreSQL), passed on in dev.env when set.
SHARED_WITH_WORKERS = (
    "INGEST_EXECUTOR",
    "INGEST_CELERY_BROKER_URL",
    "INGEST_CELERY_BACKEND_URL",
    "INGEST_DAGSTER_PG_URL",
)
INTAKE_PORT = 8090
API_PORT = 8091
S3_EMULATOR_PORT = 9000
WEBSERVER_START_SECONDS = 180


def run_dev(
    host: str = "127.0.0.1",
    port: int = WEBSERVER_PORT,
    default_ports: bool = True,
    schedule: str | None = None,
) -> int:
    """Run the local platform until interrupted; 0 after a clean stop."""
    # A shell without job control starts background commands with SIGINT ignored, and children
    # inherit that; a handler of our own is reset to the default in every child we start.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as running:
            dagster = start_platform(running, host, port, default_ports, schedule)
            dagster.wait()
            print(f"dagster dev stopped (exit {dagster.returncode})", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("\nstopped every part of the local platform")
        return 0


def start_platform(
    running: contextlib.ExitStack,
    host: str,
    port: int,
    default_ports: bool,
    schedule: str | None,
) -> subprocess.Popen:
    """Start every part (each stopped when `running` closes); return the `dagster dev` process."""
    from ingest_pipeline.intake.background import running_intake

    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    world = start_demo_world(
        running, data_dir, default_ports, schedule, tenants_file=data_dir / "dev" / "tenants.yaml"
    )
    env = {
        "INGEST_DATA_DIR": str(data_dir),
        "INGEST_WAREHOUSE_URL": settings.resolved_warehouse_url,
        "INGEST_TENANTS_FILE": str(world.tenants_file),
        "INGEST_LANDING_BUCKET": settings.landing_bucket,
        **_object_store(running, settings, default_ports),
    }
    os.environ.update(env)
    settings = get_settings()
    _prepare_store_and_warehouse(settings)
    env["DAGSTER_HOME"] = str(ensure_dagster_home(settings))
    env[RANGE_PLANNING_ENV] = os.environ[RANGE_PLANNING_ENV]
    intake_port = port_or_free(INTAKE_PORT) if default_ports else 0
    env["INGEST_INTAKE_URL"] = running.enter_context(running_intake(settings, port=intake_port))
    ui_port = (port_or_free(port) if default_ports else 0) or free_port(host)
    env["INGEST_UI_URL"] = f"http://{host}:{ui_port}"
    api_port = (port_or_free(API_PORT) if default_ports else 0) or free_port(host)
    env["INGEST_API_URL"] = f"http://{host}:{api_port}"
    env.update({name: os.environ[name] for name in world.secret_names})
    # Where the steps run, when set: a worker started from another shell with dev.env sourced
    # (`ingest-pipeline worker`) must reach the same broker and Dagster instance.
    env.update(shared_with_workers(os.environ))
    os.environ.update(env)
    env_file = write_env_file(data_dir / "dev.env", env)
    print_settings(env, env_file)
    running.enter_context(_read_api(host, api_port))
    dagster = running.enter_context(_dagster_dev(host, ui_port))
    wait_for_webserver(env["INGEST_UI_URL"], dagster)
    print(f"\nready: the Dagster UI on {env['INGEST_UI_URL']}  (Ctrl-C stops everything)\n")
    return dagster


def _object_store(
    running: contextlib.ExitStack, settings: Settings, default_ports: bool
) -> dict[str, str]:
    """The S3 emulator on loopback, unless the settings name a store; its settings."""
    from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator

    if settings.s3_endpoint_url:
        return {"INGEST_S3_ENDPOINT_URL": settings.s3_endpoint_url}
    emulator_port = port_or_free(S3_EMULATOR_PORT) if default_ports else 0
    emulator = running.enter_context(S3Emulator(port=emulator_port or None))
    credentials = {name: os.environ.get(name, v) for name, v in EMULATOR_CREDENTIALS.items()}
    return {"INGEST_S3_ENDPOINT_URL": emulator.endpoint_url, **credentials}


def _prepare_store_and_warehouse(settings: Settings) -> None:
    """The landing bucket, the normalized tables and the instances' partitions exist before the
    first tick, so no sensor or schedule starts on a missing piece."""
    import dagster as dg

    from ingest_pipeline.defs.tenants.sensors import sync_partitions
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.domain.landing import s3_client
    from ingest_pipeline.lib.warehouse import Warehouse

    client = s3_client(settings)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=settings.landing_bucket)
    init_warehouse(Warehouse(settings.resolved_warehouse_url))
    ensure_dagster_home(settings)
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance)


def write_env_file(path: Path, env: dict[str, str]) -> Path:
    """KEY=VALUE lines a shell can source (`set -a; . FILE; set +a`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    path.write_text(
        "# Written by `make dev` (ingest-pipeline dev): the running local platform's settings\n"
        "# and the demo tenants' demo secrets. Use: set -a; . .data/dev.env; set +a\n"
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    return path


def shared_with_workers(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings of where steps run that are set: a worker started from another shell with
    dev.env sourced (`ingest-pipeline worker`) reaches the same broker and Dagster instance."""
    return {name: environ[name] for name in SHARED_WITH_WORKERS if environ.get(name)}


def print_settings(env: dict[str, str], env_file: Path) -> None:
    print("local platform settings (also in " + str(env_file) + "):")
    for name, value in sorted(env.items()):
        shown = "<demo value>" if name.startswith("DEMO_") or "SECRET" in name else value
        print(f"  {name}={without_password(shown)}")


def without_password(value: str) -> str:
    """A URL's password (a broker's, a database's) as ***; any other value as it is."""
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc or parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@contextlib.contextmanager
def _read_api(host: str, port: int) -> Iterator[subprocess.Popen]:
    """`ingest-pipeline serve-api` in its own process group, once it answers /health."""
    executable = str(Path(sys.executable).parent / "ingest-pipeline")
    api = subprocess.Popen(
        [executable, "serve-api", "--host", host, "--port", str(port)],
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        wait_until_answering(f"http://{host}:{port}/health", api, "the read API", 60)
        yield api
    finally:
        stop_group(api)


@contextlib.contextmanager
def _dagster_dev(host: str, port: int) -> Iterator[subprocess.Popen]:
    """`dagster dev` in its own process group, so it and its children stop together."""
    executable = str(Path(sys.executable).parent / "dagster")
    dagster = subprocess.Popen(
        [executable, "dev", "-w", "workspace.yaml", "-h", host, "-p", str(port)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        yield dagster
    finally:
        stop_group(dagster)


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, and every child of it: SIGINT (a clean
    stop), then SIGTERM, then SIGKILL to whatever of the group is left."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # children the leader left behind
        os.killpg(process.pid, signal.SIGKILL)


def wait_for_webserver(
    url: str, process: subprocess.Popen, timeout: float = WEBSERVER_START_SECONDS
) -> None:
    """Until the Dagster webserver at `url` answers /server_info; raises if `process` exits."""
    wait_until_answering(f"{url}/server_info", process, "dagster dev", timeout)


def wait_until_answering(url: str, process: subprocess.Popen, name: str, timeout: float) -> None:
    """Until `url` answers 2xx; raises if `process` (`name`) exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}) before serving {url}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        time.sleep(1)
    raise RuntimeError(f"{name} did not answer on {url}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
