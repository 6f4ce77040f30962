"""The error detector of the headless-browser checks (ui_browser.py) shown to fail: on a code
location that does not load, and on texts. The healthy pages, a missing run and a failing
GraphQL query are checked on the running local platform (test_dev_platform.py)."""

from __future__ import annotations

import os
import shutil
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

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is absent (Debian's chromium; .ci/run installs it with apt-get)",
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
