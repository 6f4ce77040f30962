"""The CLI, the tenants sensor, schedules, replay and the asset checks, through Dagster."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ingest_pipeline.cli import main
from ingest_pipeline.cli.ingest_runs import AFTER_RUN_TAG
from ingest_pipeline.defs.tenants.sensors import tenants_file_sensor
from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.test_items_sources import write_csv
from ingest_pipeline_tests.test_normalize_faults import META_MAPPING

REPO = Path(__file__).resolve().parents[1]


def test_init_is_idempotent_on_both_warehouses(env, capsys):
    assert main(["init"]) == 0
    assert main(["init"]) == 0
    tables = env.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'normalized' "
        "ORDER BY 1"
    )
    assert [t for (t,) in tables] == [
        "events",
        "feedback",
        "ingested_inputs",
        "intake_audit",
        "items",
        "log_records",
        "metrics_builds",
        "normalized_loads",
        "payments",
        "rejected_records",
        "uploads",
    ]
    assert "ready: normalized.items" in capsys.readouterr().out


def test_cli_ingest_prints_a_line_per_instance_and_fails_if_one_failed(
    duck_env, feed_server, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    url = feed_server.server.url
    duck_env.write_tenants(
        {
            "acme": [{"type": "rss", "name": "blog", "url": f"{url}/feed.xml"}],
            "globex": [{"type": "rss", "name": "dead", "url": f"{url}/broken.xml"}],
        }
    )
    assert main(["ingest"]) == 1
    out = capsys.readouterr().out
    assert "acme.blog" in out and "normalized=3" in out
    assert "globex.dead" in out and "failed" in out and "cannot be parsed" in out
    assert main(["ingest", "--tenant", "acme"]) == 0
    # Runs are recorded in the Dagster instance like any other run: a raw run per instance,
    # and a normalize run after each raw run that succeeded and loaded rows or left loads
    # pending (none after the dead feed's, none after the unchanged feed's second run).
    with dg.DagsterInstance.get() as instance:
        jobs = sorted(r.dagster_run.job_name for r in instance.get_run_records())
        assert jobs == ["ingest_rss"] * 3 + ["normalize_items"]


def test_cli_ingest_shows_quarantined_loads_and_still_exits_0(
    duck_env, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    # JSON nested deeper than Python's parser goes: the bad instance's raw load is quarantined.
    write_csv(
        tmp_path / "bad", "a.csv", f'sku,meta,link,updated\n1,"{"[" * 100_000}",,2026-01-01\n'
    )
    write_csv(tmp_path / "good", "a.csv", "sku,name,link,updated\n1,One,,2026-01-01\n")
    duck_env.write_tenants(
        {
            "acme": [csv_instance(tmp_path / "bad", name="bad", mapping=META_MAPPING)],
            "globex": [csv_instance(tmp_path / "good", name="good")],
        }
    )
    assert main(["ingest"]) == 0  # the runs succeeded: a replay retries the load
    bad, held, good, tally = capsys.readouterr().out.splitlines()
    [(load_id,)] = duck_env.rows("SELECT DISTINCT _dlt_load_id FROM raw_csv.acme__bad")
    assert "acme.bad" in bad and " ok " in bad
    assert "rejected=1 " in bad and bad.endswith("  quarantined=1")
    assert held.startswith(
        f"    quarantined: load {load_id} of raw_csv.acme__bad: raw load not normalized "
        "(quarantined; a replay retries it): "
    )
    assert "globex.good" in good and "quarantined" not in good and "normalized=1 " in good
    assert tally == "2 ok, 0 failed, 1 with quarantined loads (a replay retries them)"


def test_cli_ingest_runs_nothing_for_files_unchanged_since_their_last_whole_ingest(
    env, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    header = "sku,name,link,updated\n"
    write_csv(tmp_path / "good", "a.csv", header + "1,One,,2026-01-01\n2,Two,,2026-01-02\n")
    # A header holding a NUL fails its file, and with it its instance: it records nothing.
    write_csv(tmp_path / "bad", "a.csv", "sku,na\x00me\n1,One\n")
    good = csv_instance(tmp_path / "good", name="good")
    env.write_tenants({"acme": [good, csv_instance(tmp_path / "bad", name="bad")]})

    def ingest() -> dict[str, str]:
        """The summary line of each instance (by name), and the tally (by "")."""
        main(["ingest"])
        lines = capsys.readouterr().out.splitlines()
        summaries = [line for line in lines if line.startswith("csv ")]  # not an error line
        by_name = {name: line for line in summaries for name in ("good", "bad") if name in line}
        return {**by_name, "": lines[-1]}

    def jobs() -> list[str]:
        with dg.DagsterInstance.get() as instance:
            return sorted(r.dagster_run.job_name for r in instance.get_run_records())

    first = ingest()
    assert "loaded=2 " in first["good"] and "normalized=2 " in first["good"]
    assert " failed " in first["bad"]
    assert jobs() == ["ingest_csv", "ingest_csv", "normalize_items"]

    again = ingest()
    assert " ok " in again["good"] and "nothing to load" in again["good"]
    assert "unchanged (1 file, 0.0 MB) since run=" in again["good"]
    assert " failed " in again["bad"]  # ran again, failed again
    assert again[""] == "1 ok, 1 failed"
    assert jobs() == ["ingest_csv"] * 3 + ["normalize_items"]
    [(files, digest)] = env.rows(
        "SELECT files, fingerprint FROM normalized.ingested_inputs WHERE source_instance = 'good'"
    )
    assert files == 1 and len(digest) == 64

    # Every instance asked for unchanged: Dagster is not even imported.
    code = (
        "import sys; from ingest_pipeline.cli import main; code = main(['ingest', '--source', "
        "'good']); print(code, 'dagster' in sys.modules, 'dlt' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert "nothing to load" in done.stdout and done.stdout.splitlines()[-1] == "0 False False"

    # A new file: a run, which loads that file alone.
    write_csv(tmp_path / "good", "b.csv", header + "3,Three,,2026-01-03\n")
    added = ingest()["good"]
    assert "loaded=1 " in added and "normalized=1 " in added
    [(files,)] = env.rows(
        "SELECT files FROM normalized.ingested_inputs WHERE source_instance = 'good'"
    )
    assert files == 2

    # Changed options: a run (dlt finds no new file; nothing to normalize), then unchanged again.
    env.write_tenants({"acme": [{**good, "delimiter": ","}]})
    reconfigured = ingest()["good"]
    assert "loaded=0 " in reconfigured and "unchanged" not in reconfigured
    assert "unchanged (2 files" in ingest()["good"]
    assert env.rows("SELECT count(*) FROM normalized.items") == [(3,)]


def test_sensor_keeps_partitions_in_step_with_the_tenants_file(duck_env, feed_server):
    url = feed_server.server.url
    duck_env.write_tenants({"acme": [{"type": "rss", "name": "blog", "url": f"{url}/feed.xml"}]})
    result = tenants_file_sensor(dg.build_sensor_context(instance=duck_env.instance))
    [add] = result.dynamic_partitions_requests
    assert (add.partitions_def_name, list(add.partition_keys)) == ("rss_instances", ["acme.blog"])
    duck_env.instance.add_dynamic_partitions("rss_instances", ["acme.blog"])

    duck_env.write_tenants({"globex": [{"type": "rss", "name": "news", "url": f"{url}/rdf.xml"}]})
    result = tenants_file_sensor(dg.build_sensor_context(instance=duck_env.instance))
    requests = {
        type(r).__name__: list(r.partition_keys) for r in result.dynamic_partitions_requests
    }
    assert requests == {
        "AddDynamicPartitionsRequest": ["globex.news"],
        "DeleteDynamicPartitionsRequest": ["acme.blog"],
    }


def test_schedule_runs_each_instance_on_its_own_cron(duck_env, feed_server):
    url = feed_server.server.url
    duck_env.write_tenants(
        {
            "acme": [
                {"type": "rss", "name": "hourly", "url": f"{url}/feed.xml"},
                {
                    "type": "rss",
                    "name": "often",
                    "url": f"{url}/atom.xml",
                    "schedule": "*/15 * * * *",
                },
                {"type": "rss", "name": "not-synced-yet", "url": f"{url}/rdf.xml"},
            ]
        }
    )
    duck_env.instance.add_dynamic_partitions("rss_instances", ["acme.hourly", "acme.often"])
    schedule = duck_env.defs.resolve_schedule_def("ingest_rss_schedule")

    def due_at(minute: int) -> list[str]:
        context = dg.build_schedule_context(
            instance=duck_env.instance,
            scheduled_execution_time=datetime(2026, 1, 1, 1, minute, tzinfo=UTC),
            repository_def=duck_env.defs.get_repository_def(),
        )
        return sorted(r.partition_key for r in schedule.evaluate_tick(context).run_requests)

    assert due_at(0) == ["acme.hourly", "acme.often"]
    assert due_at(15) == ["acme.often"]
    assert due_at(7) == []


def test_replay_rebuilds_normalized_from_raw_alone(env):
    landing = env.tmp_path / "landing"
    write_csv(landing, "a.csv", "sku,name,link,updated\n1,One,,2026-01-01\n2,Two,,2026-01-02\n")
    env.write_tenants({"acme": [csv_instance(landing)]})
    env.ingest()
    before = env.rows("SELECT external_id, title, published_at FROM normalized.items ORDER BY 1")
    env.warehouse.execute("DELETE FROM normalized.items")
    result = env.defs.resolve_job_def("normalize_items").execute_in_process(
        instance=env.instance,
        run_config={"ops": {"normalized__items": {"config": {"replay": True}}}},
    )
    assert result.success
    assert (
        env.rows("SELECT external_id, title, published_at FROM normalized.items ORDER BY 1")
        == before
    )


def test_schema_drift_check_compares_runs_and_names_the_changed_column(env):
    landing = env.tmp_path / "landing"
    write_csv(landing, "a.csv", "sku,name,link,updated\n1,One,,2026-01-01\n")
    env.write_tenants({"acme": [csv_instance(landing)]})
    [first] = env.ingest()
    evaluation = _check(env, first.run_id, "raw_schema_unchanged")
    assert evaluation.passed
    assert evaluation.metadata["note"].value == "no previous run to compare"

    # A second run with new rows but the same columns: compared, and unchanged.
    write_csv(landing, "b.csv", "sku,name,link,updated\n2,Two,,2026-01-02\n")
    [second] = env.ingest()
    assert second.rows_loaded == 1
    evaluation = _check(env, second.run_id, "raw_schema_unchanged")
    assert evaluation.passed and "note" not in evaluation.metadata
    assert evaluation.metadata["diff"].value == {}

    # The source starts sending a new column: a warning naming it.
    write_csv(landing, "c.csv", "sku,name,link,updated,colour\n3,Three,,2026-01-03,red\n")
    [third] = env.ingest()
    evaluation = _check(env, third.run_id, "raw_schema_unchanged")
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    diff = evaluation.metadata["diff"].value
    assert diff == {"raw_csv.acme__catalog": {"added": ["colour"], "removed": []}}

    # A renamed column is a new one (dlt keeps the old column, empty from now on): named too.
    write_csv(landing, "d.csv", "sku,label,link,updated,colour\n4,Four,,2026-01-04,blue\n")
    [fourth] = env.ingest()
    evaluation = _check(env, fourth.run_id, "raw_schema_unchanged")
    assert not evaluation.passed
    diff = evaluation.metadata["diff"].value
    assert diff == {"raw_csv.acme__catalog": {"added": ["label"], "removed": []}}


def test_natural_key_check_finds_duplicates_without_the_key_constraint(env):
    landing = env.tmp_path / "landing"
    write_csv(landing, "a.csv", "sku,name,link,updated\n1,One,,2026-01-01\n2,Two,,2026-01-02\n")
    env.write_tenants({"acme": [csv_instance(landing)]})
    [outcome] = env.ingest()
    assert outcome.rows_normalized == 2
    clean = _check(env, outcome.run_id, "natural_key_unique")
    assert clean.passed
    assert (clean.metadata["duplicate_keys"].value, clean.metadata["examples"].value) == (0, [])

    # The same rows in a table without its primary key, then a second row for key '1'.
    for sql in (
        "CREATE TABLE normalized.items_copy AS SELECT * FROM normalized.items",
        "DROP TABLE normalized.items",
        "ALTER TABLE normalized.items_copy RENAME TO items",
        "INSERT INTO normalized.items SELECT * FROM normalized.items WHERE external_id = '1'",
    ):
        env.warehouse.execute(sql)
    assert env.rows("SELECT count(*) FROM normalized.items") == [(3,)]
    duplicated = _run_check_alone(env, "natural_key_unique")
    assert not duplicated.passed
    assert duplicated.severity == dg.AssetCheckSeverity.ERROR
    assert duplicated.metadata["duplicate_keys"].value == 1
    key = {"tenant_id": "acme", "source_type": "csv", "source_instance": "catalog"}
    assert duplicated.metadata["examples"].value == [
        {"key": {**key, "external_id": "1"}, "rows": 2}
    ]


def test_dbt_skeleton_builds_on_empty_normalized_tables(duck_env, tmp_path):
    result = subprocess.run(
        [
            str(Path(REPO / ".venv/bin/dbt")),
            "build",
            "--profiles-dir",
            ".",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=REPO / "dbt_metrics",
        env={
            "DBT_DUCKDB_PATH": str(duck_env.warehouse.duckdb_path),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert duck_env.rows("SELECT count(*) FROM metrics.stg_items") == [(0,)]


def _check(env, run_id: str, name: str):
    """A check's evaluation in the normalize run that followed the raw run `run_id`."""
    [normalize_run] = env.instance.get_runs(dg.RunsFilter(tags={AFTER_RUN_TAG: run_id}))
    for entry in env.instance.all_logs(normalize_run.run_id):
        event = entry.dagster_event
        is_check = event is not None and event.event_type_value == "ASSET_CHECK_EVALUATION"
        if is_check and event.event_specific_data.check_name == name:
            return event.event_specific_data
    raise AssertionError(f"no {name} evaluation in run {run_id}")


def _run_check_alone(env, name: str):
    """Run one check of normalized/items by itself (its asset not materialized) in a run."""
    check = dg.AssetCheckKey(dg.AssetKey(["normalized", "items"]), name)
    job = env.defs.resolve_job_def("normalize_items")
    subset = job.get_subset(asset_selection=set(), asset_check_selection={check})
    result = subset.execute_in_process(instance=env.instance)
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == name
    return evaluation
