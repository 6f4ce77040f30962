"""The Dagster UI in a real headless browser: a real dagster-webserver on our workspace, pages
rendered by Debian's Chromium through Playwright, checked for their content and for error banners.
The detector is also shown to fail: on a missing run, a failing GraphQL query and a code location
that does not load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest_pipeline.lib.ports import free_port
from ingest_pipeline_tests.ui_browser import (
    CHROMIUM,
    Webserver,
    dagster_webserver,
    error_texts_in,
    render_page,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is absent (Debian's chromium; .ci/run installs it with apt-get)",
)


def _ensure_dbt_manifest() -> None:
    """dagster-dbt loads the manifest with the definitions (`make test` parses it first)."""
    if not (ROOT / "dbt_metrics" / "target" / "manifest.json").exists():
        subprocess.run(
            [str(BIN / "dbt"), "parse", "--profiles-dir", ".", "--quiet"],
            cwd=ROOT / "dbt_metrics",
            check=True,
        )


def _server_env(home: Path) -> dict[str, str]:
    """A fresh Dagster instance (SQLite, our dagster.yaml) and an empty tenants file."""
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    tenants = home.parent / "tenants.yaml"
    tenants.write_text("tenants: {}\n", encoding="utf-8")
    env = dict(os.environ)
    env.pop("INGEST_DAGSTER_PG_URL", None)
    env.update(
        DAGSTER_HOME=str(home),
        INGEST_DATA_DIR=str(home.parent / "data"),
        INGEST_WAREHOUSE_URL=f"duckdb:///{home.parent / 'wh.duckdb'}",
        INGEST_TENANTS_FILE=str(tenants),
    )
    return env


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian's chromium; .ci/run installs it with apt-get)")
    _ensure_dbt_manifest()
    tmp = tmp_path_factory.mktemp("dagster-ui")
    with dagster_webserver(
        workspace="workspace.yaml",
        port=free_port(),
        cwd=ROOT,
        env=_server_env(tmp / "dagster_home"),
        log=tmp / "webserver.log",
        executable=BIN / "dagster-webserver",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def broken_webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """A webserver whose only code location raises on import."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian's chromium; .ci/run installs it with apt-get)")
    tmp = tmp_path_factory.mktemp("dagster-ui-broken")
    (tmp / "broken_defs.py").write_text('raise RuntimeError("broken on purpose")\n')
    (tmp / "workspace.yaml").write_text(
        "load_from:\n"
        "  - python_file:\n"
        "      relative_path: broken_defs.py\n"
        "      location_name: broken_location\n"
    )
    with dagster_webserver(
        workspace=tmp / "workspace.yaml",
        port=free_port(),
        cwd=tmp,
        env=_server_env(tmp / "dagster_home"),
        log=tmp / "webserver.log",
        executable=BIN / "dagster-webserver",
    ) as server:
        yield server


def _assert_healthy(report, *texts: str) -> None:
    assert report.rendered, report.summary()
    assert not report.has_error_banner, report.summary()
    assert not report.console_errors, report.summary()
    for text in texts:
        assert text in report.text, report.summary()
    assert report.screenshot.stat().st_size > 10_000, report.summary()


@needs_chromium
def test_global_asset_lineage_renders_asset_keys(webserver: Webserver, tmp_path: Path) -> None:
    groups = render_page(
        webserver.base_url, "/asset-groups", tmp_path / "lineage.png", wait_for_text="normalized"
    )
    _assert_healthy(groups, "Global asset lineage", "landing", "metrics")
    # One group selected: the lineage graph shows that group's assets by key.
    normalized = render_page(
        webserver.base_url,
        '/asset-groups~group:"normalized"/',
        tmp_path / "lineage-normalized.png",
        wait_for_text="rejected_records",
    )
    _assert_healthy(normalized, "items", "feedback", "payments")


@needs_chromium
def test_automation_page_renders_sensors_and_schedules(
    webserver: Webserver, tmp_path: Path
) -> None:
    report = render_page(
        webserver.base_url,
        "/automation",
        tmp_path / "automation.png",
        wait_for_text="tenants_file_sensor",
    )
    _assert_healthy(report, "landing_events_sensor", "ingest_rss_schedule")


@needs_chromium
def test_overview_renders_without_error(webserver: Webserver, tmp_path: Path) -> None:
    # /overview redirects to the activity timeline, whose rows are the jobs.
    report = render_page(
        webserver.base_url, "/overview", tmp_path / "overview.png", wait_for_text="ingest_rss"
    )
    _assert_healthy(report, "Timeline")
    assert "/overview/" in report.url, report.summary()


@needs_chromium
def test_detector_flags_a_missing_run(webserver: Webserver, tmp_path: Path) -> None:
    report = render_page(
        webserver.base_url,
        "/runs/00000000-0000-0000-0000-000000000000",
        tmp_path / "missing-run.png",
    )
    assert "text: No run found" in report.error_banners, report.summary()


@needs_chromium
def test_detector_flags_a_graphql_error_toast(webserver: Webserver, tmp_path: Path) -> None:
    """One of the page's queries answered with a GraphQL error: the UI shows a red toast."""

    def fail_one_query(page) -> None:
        def handle(route) -> None:
            body = json.loads(route.request.post_data or "{}")
            if body.get("operationName") == "InstanceWarningQuery":
                route.fulfill(
                    status=200,
                    content_type="application/json",
                    body=json.dumps({"data": None, "errors": [{"message": "injected failure"}]}),
                )
            else:
                route.continue_()

        page.route("**/graphql*", handle)

    report = render_page(
        webserver.base_url,
        "/automation",
        tmp_path / "graphql-error.png",
        wait_for_text="tenants_file_sensor",
        setup=fail_one_query,
    )
    assert any(
        b.startswith("error toast: Unexpected GraphQL error") for b in report.error_banners
    ), report.summary()
    assert any("injected failure" in e for e in report.console_errors), report.summary()


@needs_chromium
def test_detector_flags_a_code_location_that_fails_to_load(
    broken_webserver: Webserver, tmp_path: Path
) -> None:
    locations = render_page(
        broken_webserver.base_url,
        "/locations",
        tmp_path / "broken-locations.png",
        wait_for_text="broken_location",
    )
    assert "text: View error" in locations.error_banners, locations.summary()
    assert "Failed" in locations.text, locations.summary()
    # /automation shows no banner for it, only "No automations": the expected sensor never
    # appears, which is what the healthy checks above wait for.
    automation = render_page(
        broken_webserver.base_url,
        "/automation",
        tmp_path / "broken-automation.png",
        wait_for_text="tenants_file_sensor",
        timeout_s=10,
    )
    assert not automation.rendered, automation.summary()
    assert "No automations" in automation.text, automation.summary()


def test_error_texts_are_found_in_page_text() -> None:
    assert error_texts_in("Runs / 0000\nNo run found\nThe run with this ID does not exist") == [
        "No run found"
    ]
    assert error_texts_in("Automation\ntenants_file_sensor\nStandard sensor") == []
