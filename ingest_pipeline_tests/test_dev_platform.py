"""`make dev` as a user meets it: the whole local platform started by `ingest-pipeline dev`
(on free ports, every demo instance on a one-minute cron), watched through Dagster's GraphQL API
and a headless browser, used through the CLI, curl and the intake as the README says.

One platform for the module (it takes about 30 s to start); the tests read what it did. Once
every schedule has requested runs and the sensors have been watched under that load, the first
test stops the schedules, so the rest of the module (uploads, webhooks, the README's commands)
does not wait behind a queue of pulls that every-minute crons keep filling on two cores.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from ingest_pipeline.intake.signatures import sign_stripe
from ingest_pipeline.lib.source_types import SOURCE_TYPES
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox import stripe
from ingest_pipeline_tests import ui_browser
from ingest_pipeline_tests.platform import ASSETS, REPO, Platform, running_platform

pytestmark = pytest.mark.integration

# Every declared type's schedule: the demo world has an instance of each (test_fast_source_types).
SCHEDULES = [f"ingest_{name}_schedule" for name in SOURCE_TYPES]
TICK_INTERVALS_WATCHED = 3


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    with running_platform(tmp_path_factory.mktemp("dev")) as running:
        yield running
    # Leaving the block stopped every part (SIGTERM): nothing listens on the UI port now.
    with pytest.raises(requests.ConnectionError):
        requests.get(running.ui_url, timeout=5)


def _wait(what: str, check, timeout: float, every: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def test_every_schedule_requests_runs_and_no_tick_fails(platform: Platform):
    watched_from = time.time()
    # Watched for a few ticks of the frequent sensors (TICK_INTERVALS_WATCHED of their 30 s), and
    # until each sensor of at most a minute (dbt_source_freshness_sensor's is 60 s) has ticked
    # TICK_INTERVALS_WATCHED - 1 times since: as soon as that holds, not a fixed 3 x 60 s. The
    # metrics refresh (every INGEST_METRICS_REFRESH_MINUTES, 10) ticks once at the start and must
    # not fail.
    intervals = {name: i["interval"] for name, i in platform.instigators().items()}
    frequent = min(intervals[n] for n in intervals if n.endswith("_sensor"))
    per_minute = [n for n in intervals if n.endswith("_sensor") and intervals[n] <= 60]

    def recent_ticks(state: dict) -> list[dict]:
        return [t for t in state["ticks"] if t["timestamp"] >= watched_from - 1]

    def schedules_requested_runs_and_sensors_ticked():
        found = platform.instigators()
        waiting = [n for n in SCHEDULES if not any(t["runIds"] for t in found[n]["ticks"])]
        waiting += [
            n for n in per_minute if len(recent_ticks(found[n])) < TICK_INTERVALS_WATCHED - 1
        ]
        watched = time.time() - watched_from >= frequent * TICK_INTERVALS_WATCHED
        return found if watched and not waiting else None

    found = _wait(
        f"every ingest schedule's runs and {TICK_INTERVALS_WATCHED} sensor intervals",
        schedules_requested_runs_and_sensors_ticked,
        240,
    )
    for name, state in found.items():
        assert state["status"] == "RUNNING", name
        failed = [t["error"]["message"][:300] for t in state["ticks"] if t["status"] == "FAILURE"]
        assert not failed, f"{name}: {failed[0]}"
        if name in per_minute:
            recent = recent_ticks(state)
            assert len(recent) >= TICK_INTERVALS_WATCHED - 1, (name, len(recent))
        elif name.endswith("_sensor"):
            assert state["ticks"], name
    platform.stop_schedules()


def test_an_upload_through_a_presigned_url_ends_in_a_successful_run(
    platform: Platform, tmp_path: Path
):
    bodies = {
        "logs": "2026-01-05T10:00:00Z INFO api started\n2026-01-05T10:00:01Z ERROR api boom\n",
        # The demo tenant pseudonymizes its events' IP addresses (tenants.example.yaml).
        "events": '{"event_id": "dev-1", "event_type": "VIEW", '
        '"occurred_at": "2026-01-05T10:00:00Z", "ip": "203.0.113.77"}\n',
    }
    shell = platform.shell_env()
    keys = {}
    for kind, text in bodies.items():
        body = tmp_path / f"upload.{kind}"
        body.write_text(text, encoding="utf-8")
        url = subprocess.run(
            [
                *("ingest-pipeline", "upload-url", "--tenant", "acme"),
                *("--kind", kind, "--filename", body.name),
            ],
            env=shell,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(["curl", "-sfT", str(body), url], env=shell, check=True)
        keys[kind] = url.split("?")[0].split("/landing/", 1)[1]

    def completed_runs():
        done = [platform.runs(pipelineName=f"land_{k}", statuses=["SUCCESS"]) for k in bodies]
        return done if all(done) else None

    # One sensor interval to notice them, the runs ahead of scheduled pulls in the queue.
    _wait("a successful land_logs and land_events run", completed_runs, 150)
    warehouse = Warehouse(platform.env["INGEST_WAREHOUSE_URL"])
    for kind, rows_loaded in (("logs", 2), ("events", 1)):
        rows = warehouse.fetch_all(
            "SELECT status, rows_loaded FROM normalized.uploads WHERE object_key = %s",
            (keys[kind],),
        )
        assert rows == [("Completed", rows_loaded)]
    [(ip,)] = warehouse.fetch_all("SELECT ip FROM normalized.events WHERE event_id = 'dev-1'")
    assert ip.startswith("pii_") and "203.0.113.77" not in ip


def test_a_signed_webhook_posted_to_the_intake_lands_in_normalized_payments(platform: Platform):
    intent = stripe.payment_intent_id(901, account="devtest")
    event = stripe.payment_event(
        "payment_intent.succeeded", intent, 4200, created=int(time.time()), author_id="a-9"
    )
    body = json.dumps(event).encode()
    secret = platform.env["DEMO_ACME_STRIPE_WHSEC"]
    answer = requests.post(
        f"{platform.env['INGEST_INTAKE_URL']}/webhooks/stripe/acme",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": sign_stripe(body, secret)},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    warehouse = Warehouse(platform.env["INGEST_WAREHOUSE_URL"])

    def payment_row():
        return warehouse.fetch_all(
            "SELECT amount, status FROM normalized.payments WHERE payment_id = %s", (intent,)
        )

    assert _wait("the pushed payment in normalized.payments", payment_row, 150) == [
        (4200, "succeeded")
    ]


def test_the_read_api_serves_the_demo_tenant_what_the_schedules_loaded(platform: Platform):
    api = platform.env["INGEST_API_URL"]
    assert requests.get(f"{api}/health", timeout=10).json() == {"status": "ok"}
    items = f"{api}/v1/tenants/acme/items?limit=5"
    assert requests.get(items, timeout=10).status_code == 401
    token = {"Authorization": f"Bearer {platform.env['DEMO_ACME_READ_TOKEN']}"}

    def a_page():  # 503 while a run holds the DuckDB file: asked again
        answer = requests.get(items, headers=token, timeout=10)
        return answer.json()["data"] if answer.status_code == 200 else None

    page = _wait("a page of acme's items from the read API", a_page, 150)
    assert {row["tenant_id"] for row in page} == {"acme"} and len(page) <= 5


def test_the_metrics_schedule_asks_for_yesterdays_partition(platform: Platform):
    # What the schedule's 00:30 UTC tick asks for, evaluated as the UI's "Test schedule" does
    # (the README test's backfill then builds metrics_daily partitions through the daemon).
    tick = datetime.now(UTC).replace(hour=0, minute=30, second=0, microsecond=0)
    dry_run = """mutation DryRun($selector: ScheduleSelector!, $timestamp: Float) {
      scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
        ... on DryRunInstigationTick { evaluationResult { runRequests { tags { key value } }
          error { message } } } ... on PythonError { message } } }"""
    selector = {
        "repositoryLocationName": "ingest_pipeline",
        "repositoryName": "__repository__",
        "scheduleName": "metrics_daily_schedule",
    }
    result = platform.graphql(dry_run, selector=selector, timestamp=tick.timestamp())
    evaluation = result["scheduleDryRun"]["evaluationResult"]
    [request] = evaluation["runRequests"]
    tags = {t["key"]: t["value"] for t in request["tags"]}
    assert tags["dagster/partition"] == (tick - timedelta(days=1)).date().isoformat()
    assert not evaluation["error"], evaluation


def test_the_asset_graph_has_the_landing_and_rejects_edges(platform: Platform):
    nodes = {"/".join(n["assetKey"]["path"]): n for n in platform.graphql(ASSETS)["assetNodes"]}

    def parents(key: str) -> set[str]:
        return {"/".join(d["path"]) for d in nodes[key]["dependencyKeys"]}

    assert "landing/crawl" in parents("normalized/items")
    assert "landing/webhooks" in parents("normalized/feedback")
    assert "landing/webhooks" in parents("normalized/payments")
    assert nodes["normalized/rejected_records"]["groupName"] == "normalized"
    for key, node in nodes.items():
        assert node["groupName"] != "default", key
        assert node["description"], key


def test_the_lineage_and_automation_pages_render_in_a_browser(platform: Platform, tmp_path):
    if not Path(ui_browser.CHROMIUM).exists():
        pytest.skip(f"{ui_browser.CHROMIUM} is not installed (.ci/run installs it)")
    pages = {
        "lineage": ('/asset-groups~group:"normalized"/', "rejected_records", ("items", "payments")),
        "automation": ("/automation", "landing_logs_sensor", ("ingest_rss_schedule",)),
    }
    for name, (path, expected, also) in pages.items():
        report = ui_browser.render_page(
            platform.ui_url, path, tmp_path / f"{name}.png", wait_for_text=expected
        )
        assert report.rendered and not report.has_error_banner, report.summary()
        assert not report.console_errors, report.summary()
        assert all(text in report.text for text in also), report.summary()
        assert report.screenshot.stat().st_size > 10_000, report.summary()


def test_the_browser_check_sees_error_banners(platform: Platform, tmp_path):
    """The detector the page checks above rely on, shown to fail on this same UI."""
    if not Path(ui_browser.CHROMIUM).exists():
        pytest.skip(f"{ui_browser.CHROMIUM} is not installed (.ci/run installs it)")
    missing = ui_browser.render_page(
        platform.ui_url, "/runs/00000000-0000-0000-0000-000000000000", tmp_path / "missing.png"
    )
    assert "text: No run found" in missing.error_banners, missing.summary()

    def fail_one_query(page) -> None:
        def handle(route) -> None:
            body = json.loads(route.request.post_data or "{}")
            if body.get("operationName") == "InstanceWarningQuery":
                failure = {"data": None, "errors": [{"message": "injected failure"}]}
                route.fulfill(status=200, content_type="application/json", body=json.dumps(failure))
            else:
                route.continue_()

        page.route("**/graphql*", handle)

    toast = ui_browser.render_page(
        platform.ui_url,
        "/automation",
        tmp_path / "graphql-error.png",
        wait_for_text="landing_logs_sensor",
        setup=fail_one_query,
    )
    assert any(b.startswith("error toast: Unexpected GraphQL error") for b in toast.error_banners)


def readme_commands(readme: Path) -> list[str]:
    """Every line of the README's ```sh blocks but `make ...` (make demo / make test / make dev
    are what the suite itself is run by), comments and blank lines kept out."""
    lines, inside = [], False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```sh" and not inside
            continue
        command = line.strip()
        if inside and command and not command.startswith(("#", "make ")):
            lines.append(line)
    return lines


def test_the_readme_commands_run_verbatim_against_the_running_platform(
    platform: Platform, tmp_path: Path
):
    commands = readme_commands(REPO / "README.md")
    assert any("dev.env" in c for c in commands) and any("job backfill" in c for c in commands)
    # A checkout's layout with this platform's data as its .data: the commands as written, in
    # a shell where only dev.env was sourced (the README's first command).
    for name in (".venv", "workspace.yaml", "dbt_metrics"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / ".data").symlink_to(Path(platform.env["INGEST_DATA_DIR"]))
    script = tmp_path / "readme.sh"
    script.write_text("set -euxo pipefail\n" + "\n".join(commands) + "\n", encoding="utf-8")
    started = time.time()
    done = subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        env={**platform.shell_env(venv_on_path=False), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])

    # The daemon backfill's runs, one per day, all end successfully, one after the other.
    def backfill_runs_done():
        runs = [
            r
            for r in platform.runs(pipelineName="metrics_daily")
            if "dagster/backfill" in r["tags"]
        ]
        runs = [
            r for r in runs if (r["startTime"] or started) >= started - 1 or r["status"] == "QUEUED"
        ]
        finished = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return runs if runs and len(finished) == len(runs) else None

    runs = _wait("the README's backfill runs", backfill_runs_done, 400, every=5)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCESS"}, runs
    # Requested at once, the two warehouse-writing runs wrote one after the other: the dbt step
    # of one ended before the other's began (the duckdb_warehouse pool, limit 1).
    windows = sorted(_step_window(platform, r["runId"]) for r in runs)
    assert windows[0][1] <= windows[1][0], windows


def _step_window(platform: Platform, run_id: str) -> tuple[float, float]:
    query = """query Steps($runId: ID!) { runOrError(runId: $runId) { ... on Run {
      stepStats { stepKey startTime endTime } } } }"""
    [step] = platform.graphql(query, runId=run_id)["runOrError"]["stepStats"]
    return step["startTime"], step["endTime"]
