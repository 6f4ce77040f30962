"""What start-up must not load (issue 14). `ingest-pipeline --help` imports none of the
platform's libraries, and `ingest-pipeline ingest` builds its definitions without dbt,
dagster-dbt or dagster-aws, yet with the code location's own raw and normalized assets, checks
and jobs. What a fresh interpreter imports is read in a child process (`python -c`): this
process has imported everything already. A short command in its own process collects less
often and freezes at its end (cli/__init__.py); a caller's `main([...])` leaves gc alone. A child
process is not the fast tier's (conftest.py), so those tests are `integration`; the comparison of
the definitions is fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ingest_pipeline.cli import QUICK_GC_THRESHOLD
from ingest_pipeline.definitions import defs as load_defs
from ingest_pipeline.definitions import ingest_defs

HEAVY = ("dagster", "dagster_dbt", "dagster_aws", "dbt", "dlt", "boto3", "pyarrow", "duckdb")
NOT_FOR_INGEST = ("dagster_dbt", "dbt", "dagster_aws")


def imported_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.integration
def test_the_cli_and_its_help_import_no_library_of_the_platform() -> None:
    code = (
        "import contextlib, io\n"
        "from ingest_pipeline.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
    )
    assert imported_after(code).isdisjoint(HEAVY)


@pytest.mark.integration
def test_the_ingest_definitions_load_without_dbt_or_the_s3_sensors() -> None:
    found = imported_after("from ingest_pipeline.definitions import ingest_defs; ingest_defs()")
    assert found.isdisjoint(NOT_FOR_INGEST)
    assert {"dagster", "dagster_dlt", "dlt"} <= found


def test_the_ingest_definitions_are_the_code_locations_own_but_metrics_and_landing_sensors() -> (
    None
):
    whole, ingest = load_defs(), ingest_defs()
    full, graph = whole.resolve_asset_graph(), ingest.resolve_asset_graph()

    def own(keys: set[dg.AssetKey]) -> set[str]:
        return {k.to_user_string() for k in keys if k.path[0] != "metrics"}

    assert own(graph.get_all_asset_keys()) == own(full.get_all_asset_keys())
    # All but the metrics' own: their models' checks and dbt's source freshness.
    assert {(c.asset_key, c.name) for c in graph.asset_check_keys} == {
        (c.asset_key, c.name)
        for c in full.asset_check_keys
        if c.asset_key.path[0] != "metrics" and c.name != "dbt_source_fresh"
    }
    jobs = {j.name for j in whole.jobs} - {"metrics_daily", "dbt_source_freshness"}  # type: ignore[union-attr]
    assert {j.name for j in ingest.jobs} == jobs  # type: ignore[union-attr]
    for name in jobs:
        assert (
            ingest.resolve_job_def(name).asset_layer.selected_asset_keys
            == whole.resolve_job_def(name).asset_layer.selected_asset_keys
        )
    assert {s.name for s in ingest.sensors} == {
        "tenants_file_sensor",
        "normalize_automation_sensor",
        "instance_freshness_sensor",
    }
    assert set(ingest.resources or {}) == set(whole.resources or {}) - {"dbt"}


@pytest.mark.integration
def test_a_short_command_collects_less_and_freezes_at_its_end_only_in_its_own_process(
    tmp_path: Path,
) -> None:
    """`init` run as its process's own command line (argv None) raises gc's first threshold and
    freezes what is left when it ends; a caller's `main([...])` (the tests') leaves gc alone."""
    code = (
        "import gc, json, sys\n"
        "from ingest_pipeline.cli import main\n"
        "before = (gc.get_threshold(), gc.get_freeze_count())\n"
        "assert main(['init']) == 0\n"
        "called = (gc.get_threshold(), gc.get_freeze_count())\n"
        "sys.argv = ['ingest-pipeline', 'init']\n"
        "assert main() == 0\n"
        "own = (gc.get_threshold(), gc.get_freeze_count())\n"
        "print(json.dumps([before, called, own]))\n"
    )
    env = {**os.environ, "INGEST_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'wh.duckdb'}"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    before, called, own = json.loads(out.stdout.strip().splitlines()[-1])
    assert called == before
    assert own[0][0] == QUICK_GC_THRESHOLD and own[1] > 0
