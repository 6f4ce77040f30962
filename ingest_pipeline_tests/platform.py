"""The local platform (`ingest-pipeline dev`, what `make dev` runs) as a test starts it, and
Dagster's GraphQL API as the tests read it: what a person sees in the UI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import requests
import yaml

from ingest_pipeline.cli.dev import stop_group

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
READY_SECONDS = 240

TICKS = """
query Ticks { repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { name minIntervalSeconds sensorState { status
    ticks(limit: 100) { status timestamp runIds skipReason error { message } } } }
  schedules { name scheduleState { id status
    ticks(limit: 100) { status timestamp runIds skipReason error { message } } } }
} } } }
"""
RUNS = """
query Runs($filter: RunsFilter) { runsOrError(filter: $filter, limit: 200) { ... on Runs {
  results { runId jobName status startTime endTime tags { key value } } } } }
"""
ASSETS = """
query Assets { assetNodes { assetKey { path } groupName description
  dependencyKeys { path } } }
"""


@dataclass
class Platform:
    process: subprocess.Popen
    env: dict[str, str]  # what dev.env holds
    log: Path

    @property
    def ui_url(self) -> str:
        return self.env["INGEST_UI_URL"]

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = requests.post(
            f"{self.ui_url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        answer.raise_for_status()
        document = answer.json()
        assert "errors" not in document, document["errors"]
        return document["data"]

    def shell_env(self, venv_on_path: bool = True) -> dict[str, str]:
        """A user's shell after `set -a; . .data/dev.env; set +a` (and the venv activated)."""
        path = os.environ["PATH"].replace(f"{BIN}:", "")
        return {**_clean_environ(), **self.env, "PATH": f"{BIN}:{path}" if venv_on_path else path}

    def instigators(self) -> dict[str, dict[str, Any]]:
        """{sensor or schedule name: {"status", "ticks", "interval"}}."""
        [repository] = self.graphql(TICKS)["repositoriesOrError"]["nodes"]
        found = {}
        for sensor in repository["sensors"]:
            found[sensor["name"]] = {
                **sensor["sensorState"],
                "interval": sensor["minIntervalSeconds"],
            }
        for schedule in repository["schedules"]:
            found[schedule["name"]] = {**schedule["scheduleState"], "interval": 60}
        return found

    def stop_schedules(self) -> None:
        """Stop every schedule, as the UI's toggle does, and cancel the scheduled runs still
        queued (as the runs page's "Terminate" does)."""
        stop = """mutation Stop($id: String!) { stopRunningSchedule(id: $id) { __typename } }"""
        for name, state in self.instigators().items():
            if name.endswith("_schedule"):
                self.graphql(stop, id=state["id"])
        queued = [
            r["runId"]
            for r in self.runs(statuses=["QUEUED"])
            if "dagster/schedule_name" in r["tags"]
        ]
        if queued:
            terminate = """mutation Cancel($ids: [String!]!) {
              terminateRuns(runIds: $ids) { __typename } }"""
            self.graphql(terminate, ids=queued)

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        results = self.graphql(RUNS, filter=filters or None)["runsOrError"]["results"]
        for run in results:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return results


def _clean_environ() -> dict[str, str]:
    """The environment without this test process's own platform settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INGEST_", "DAGSTER_", "AWS_", "DEMO_", "DBT_"))
    }


def read_env_file(path: Path) -> dict[str, str]:
    import shlex

    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


@contextlib.contextmanager
def running_platform(workdir: Path, schedule: str = "* * * * *") -> Iterator[Platform]:
    """`ingest-pipeline dev --free-ports` with its data under `workdir`, until the block ends;
    then SIGTERM, and every part must be gone."""
    data_dir = workdir / "data"
    env = {
        **_clean_environ(),
        "INGEST_DATA_DIR": str(data_dir),
        # Where `make dev` puts it (the Makefile's default): the README's commands rely on it.
        "DAGSTER_HOME": str(data_dir / "dagster"),
    }
    log = workdir / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "ingest-pipeline"), "dev", "--free-ports", "--schedule", schedule],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, log)
        yield Platform(process, read_env_file(data_dir / "dev.env"), log)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while b"ready: the Dagster UI" not in log.read_bytes():
        tail = log.read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"ingest-pipeline dev exited:\n{tail}"
        assert time.monotonic() < deadline, f"not ready in {READY_SECONDS} s:\n{tail}"
        time.sleep(1)


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        # Whatever is left of the group (there should be nothing) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_daemon(
    dagster_home: Path,
    log_path: Path,
    run_monitoring: dict[str, Any] | None = None,
    config_file: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """A real `dagster-daemon run -w workspace.yaml` on a DAGSTER_HOME holding the repository's
    dagster.yaml (its `run_monitoring` settings updated with `run_monitoring`), or the
    dagster.yaml `config_file` names (PostgreSQL's), in its own session so it and its code
    server stop together at the end."""
    dagster_home.mkdir(exist_ok=True)
    config = yaml.safe_load((config_file or REPO / "dagster.yaml").read_text(encoding="utf-8"))
    config["run_monitoring"].update(run_monitoring or {})
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    # The instance's SQLite storages are created here, before the daemon starts: a test that
    # opens the instance while the daemon creates them races it ("table jobs already exists").
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield daemon
    finally:
        stop_group(daemon)


def wait_for_daemon(
    daemon: subprocess.Popen,
    log_path: Path,
    seconds: float,
    condition: Callable[[], bool],
    what: str,
) -> None:
    """Poll `condition` every 2 s until it holds; fail at once if the daemon exited, or after
    `seconds`, with the daemon log's tail (what it did is the only account of why)."""
    deadline = time.monotonic() + seconds
    while not condition():
        tail = log_path.read_text(errors="replace")[-6000:]
        assert daemon.poll() is None, (
            f"the daemon exited ({daemon.returncode}) before {what}:\n{tail}"
        )
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}; daemon log:\n{tail}"
        time.sleep(2)
