"""INGEST_LOG_FORMAT=json in real runs, each in processes of its own as a user or the platform
starts them: `ingest-pipeline ingest` (its runs in the CLI's process, the console logger named
in their run config), then a run launched like a schedule's (its tags, no run config) into a
run worker process of its own (`dagster job launch`, the instance's default run launcher).
Every line either writes to stderr is one JSON object: Dagster's events and messages with the
run's context, dlt's progress as messages of the run, the CLI's own lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.test_items_sources import write_csv

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUN_KEYS = {"run_id", "job", "tenant", "instance", "step_key", "event_type"}
LINE_KEYS = {"time", "level", "logger", "message", *RUN_KEYS}
# No queue: `dagster job launch` hands the run to the launcher at once (no daemon needed).
NO_QUEUE = """telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""


def json_lines(stderr: str) -> list[dict]:
    """Every non-empty line, each a JSON object (the assertion names the first that is not)."""
    found = []
    for line in filter(str.strip, stderr.splitlines()):
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line[:300]!r}") from None
        assert isinstance(found[-1], dict), line
    return found


def assert_run_lines(lines: list[dict], run: dg.DagsterRun, step_key: str) -> None:
    """The run's lines: its context on each, nothing more than the line's keys, its step's
    success and its own."""
    mine = [line for line in lines if line.get("run_id") == run.run_id]
    assert {(line["job"], line["tenant"], line["instance"]) for line in mine} == {
        (run.job_name, "acme", "catalog")
    }
    assert all(set(line) == LINE_KEYS for line in mine), mine  # no other tag, no event data
    events = [line["event_type"] for line in mine]
    assert events[0] == "RUN_START" and events[-1] == "RUN_SUCCESS", events
    assert {"STEP_START", "STEP_SUCCESS"} <= set(events)
    assert step_key in {line["step_key"] for line in mine if line["event_type"] == "STEP_SUCCESS"}


def test_run_logs_are_json_lines_with_the_run_context(duck_env, tmp_path):
    write_csv(tmp_path / "csv", "a.csv", "sku,name,link,updated\n1,One,,2026-01-01\n")
    duck_env.write_tenants({"acme": [csv_instance(tmp_path / "csv")]})
    home = tmp_path / "dagster_home"
    environment = {
        **os.environ,
        "INGEST_LOG_FORMAT": "json",
        "DAGSTER_HOME": str(home),
        # The code under test, not whatever the venv's editable install points at.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }

    cli = subprocess.run(
        [sys.executable, "-m", "ingest_pipeline.cli", "ingest", "--tenant", "acme"],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr[-3000:]
    assert "acme.catalog" in cli.stdout and "normalized=1 " in cli.stdout
    lines = json_lines(cli.stderr)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {run.job_name: run for run in instance.get_runs()}
    assert sorted(runs) == ["ingest_csv", "normalize_items"]
    assert_run_lines(lines, runs["ingest_csv"], "raw_csv")
    assert_run_lines(lines, runs["normalize_items"], "normalized__items")
    # dlt's progress: a message of the run's step (not lines of text among the JSON).
    progress = [line for line in lines if "Extract csv" in line["message"]]
    assert progress and {(p["step_key"], p["event_type"]) for p in progress} == {("raw_csv", None)}
    # Any other line is the CLI's own (none in this run): JSON too, without a run.
    assert {line.get("run_id") for line in lines} <= {None, *(r.run_id for r in runs.values())}

    # A run as a schedule starts it: tags, no run config, a run worker process of its own.
    (home / "dagster.yaml").write_text(NO_QUEUE, encoding="utf-8")
    tags = {
        "dagster/partition": "acme.catalog",
        "ingest/tenant": "acme",
        "ingest/source": "catalog",
    }
    stderr_file = tmp_path / "launch.stderr"
    launch = [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "ingest_csv"]
    with stderr_file.open("w") as stderr:
        subprocess.run(
            [*launch, "--tags", json.dumps(tags)],
            env=environment,
            cwd=REPO,
            stdout=subprocess.DEVNULL,  # the code server's own lines
            stderr=stderr,  # the run worker's, which inherits it
            check=True,
            timeout=120,
        )
    launched = wait_for_the_run_after(home, {run.run_id for run in runs.values()})
    assert launched.status == dg.DagsterRunStatus.SUCCESS
    assert launched.run_config == {} and launched.tags["ingest/tenant"] == "acme"
    lines = json_lines(written_until(stderr_file, '"RUN_SUCCESS"'))
    assert_run_lines(lines, launched, "raw_csv")
    assert {line.get("run_id") for line in lines} == {launched.run_id}


def wait_for_the_run_after(home: Path, earlier: set[str], timeout: float = 90) -> dg.DagsterRun:
    """The one run not in `earlier`, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            new = [run for run in instance.get_runs() if run.run_id not in earlier]
        if len(new) == 1 and new[0].is_finished:
            return new[0]
        assert len(new) <= 1, new
        assert time.monotonic() < deadline, f"no run finished in {timeout} s: {new}"
        time.sleep(0.5)


def written_until(path: Path, marker: str, timeout: float = 15) -> str:
    """The file's text once `marker` is in it: Dagster records a run's end before its loggers
    write the line of it."""
    deadline = time.monotonic() + timeout
    while marker not in (text := path.read_text()):
        assert time.monotonic() < deadline, f"{marker} not written:\n{text[-3000:]}"
        time.sleep(0.2)
    return text
