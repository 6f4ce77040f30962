"""The four feedback platforms against their sandboxes over real HTTP, through Dagster runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

from ingest_pipeline.defs.tenants.sensors import tenants_file_sensor
from ingest_pipeline.sandbox import discourse, intercom, playstore, twitter
from ingest_pipeline.sandbox.instances import feedback_instance

SECRETS = {"acme": "acme-platform-secret-1a2b", "globex": "globex-platform-secret-9z8y"}
# What each sandbox answers an unknown secret with, as the real platform does.
AUTH_FAILURES = {
    "playstore": "401 Client Error: Unauthorized",
    "twitter": "401 Client Error: Unauthorized",
    "discourse": "403 Client Error: Forbidden",
    "intercom": "401 Client Error: Unauthorized",
}
FEEDBACK_SNAPSHOT = (
    "SELECT tenant_id, source_type, source_instance, external_id, thread_id, author_id, "
    "author_name, text, rating, language, url, created_at, updated_at, raw_load_id, ingested_at "
    "FROM normalized.feedback ORDER BY 1, 2, 3, 4"
)


@dataclass
class Platform:
    """How a test drives one platform's sandbox and configures an instance of it."""

    name: str
    sandbox: Any

    @property
    def url(self) -> str:
        return self.sandbox.server.url

    def instance(self, tenant: str, name: str = "main") -> dict[str, Any]:
        env = f"{tenant.upper()}_{self.name.upper()}_SECRET"
        page_size = 10 if self.name == "twitter" else 2  # X pages hold 10 at least
        return feedback_instance(
            self.name, tenant, f"{self.url}/{tenant}", env, name, page_size=page_size
        )

    def seed(self, tenant: str, count: int, start: int = 1) -> None:
        secret, s = SECRETS[tenant], self.sandbox
        if self.name == "playstore":
            s.add_account(secret, f"com.{tenant}.app", playstore.sample_reviews(count, start))
        elif self.name == "twitter":
            s.add_account(secret, *twitter.sample_tweets(count, start))
        elif self.name == "discourse":
            s.add_account(secret, "system", discourse.sample_posts(count, start))
        else:
            s.add_account(secret, intercom.sample_conversations(count, start))

    def add_newer(self, tenant: str, count: int, start: int) -> None:
        secret, s = SECRETS[tenant], self.sandbox
        if self.name == "playstore":
            s.add_reviews(secret, f"com.{tenant}.app", playstore.sample_reviews(count, start))
        elif self.name == "twitter":
            s.add_tweets(secret, twitter.sample_tweets(count, start)[0])
        elif self.name == "discourse":
            s.add_posts(secret, discourse.sample_posts(count, start))
        else:
            s.add_conversations(secret, intercom.sample_conversations(count, start))

    def edit(self, tenant: str, text: str) -> str | None:
        """Edit record 4 (Intercom: add a reply); the external id whose text must change."""
        secret, s = SECRETS[tenant], self.sandbox
        if self.name == "playstore":
            review_id = playstore.sample_reviews(1, 4)[0]["reviewId"]
            s.edit_review(secret, review_id, text, 1767225600 + 100 * 3600)
            return review_id
        if self.name == "discourse":
            s.edit_post(secret, 4, text, "2026-02-01T00:00:00.000Z")
            return "4"
        if self.name == "intercom":
            conversation_id = intercom.sample_conversations(1, 4)[0]["id"]
            s.add_reply(secret, conversation_id, f"<p>{text}</p>", 1767225600 + 100 * 3600)
            return None  # a reply is a part (raw only): the opening-message text stays
        return None  # a tweet is never edited in place (an edit is a new tweet)


def _platform(name: str) -> Platform:
    sandbox = {
        "playstore": playstore.PlayStoreSandbox,
        "twitter": twitter.TwitterSandbox,
        "discourse": discourse.DiscourseSandbox,
        "intercom": intercom.IntercomSandbox,
    }[name]()
    if name == "discourse":
        sandbox.page_size = 2  # Discourse has no page-size parameter: the server decides
    sandbox.server.start()
    return Platform(name, sandbox)


@pytest.fixture(params=["playstore", "twitter", "discourse", "intercom"])
def platform(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    p = _platform(request.param)
    for tenant, secret in SECRETS.items():
        monkeypatch.setenv(f"{tenant.upper()}_{p.name.upper()}_SECRET", secret)
    yield p
    p.sandbox.server.stop()


def test_pages_incremental_edit_and_rerun(duck_env, platform):
    platform.seed("acme", 5)
    duck_env.write_tenants({"acme": [platform.instance("acme")]})
    [first] = duck_env.ingest()
    assert first.status == "ok", first.error
    assert first.rows_normalized == 5
    first_requests = len(platform.sandbox.server.requests)
    if platform.name != "twitter":  # X pages hold 10 at least
        assert first_requests >= 3, "5 records, 2 a page"

    platform.add_newer("acme", 2, start=6)
    edited = platform.edit("acme", "Edited: now it works")
    platform.sandbox.server.requests.clear()
    [second] = duck_env.ingest()
    assert second.status == "ok", second.error
    rows = dict(duck_env.rows("SELECT external_id, text FROM normalized.feedback"))
    assert len(rows) == 7
    if edited:
        assert "Edited: now it works" in rows[edited]
    _assert_asked_only_for_newer(platform, second)

    before = duck_env.rows(FEEDBACK_SNAPSHOT)
    [third] = duck_env.ingest()
    assert third.status == "ok" and duck_env.rows(FEEDBACK_SNAPSHOT) == before


def _assert_asked_only_for_newer(platform: Platform, outcome: Any) -> None:
    requests = platform.sandbox.server.requests
    if platform.name == "twitter":
        assert requests[0].query["since_id"] == [str(twitter.BASE_ID + 5)]
        assert outcome.rows_loaded == 2
    elif platform.name == "intercom":
        assert requests[0].json()["query"]["value"] > 0
        assert outcome.rows_loaded == 3  # two new conversations and the one with a reply
    elif platform.name == "playstore":
        # Newest first, stopping at the reviews already loaded: not all 4 pages again.
        assert len(requests) <= 3 and outcome.rows_loaded == 3


def test_intercom_reply_updates_the_conversation_row(duck_env, monkeypatch):
    p = _platform("intercom")
    monkeypatch.setenv("ACME_INTERCOM_SECRET", SECRETS["acme"])
    try:
        p.seed("acme", 3)
        duck_env.write_tenants({"acme": [p.instance("acme")]})
        duck_env.ingest()
        conversation_id = intercom.sample_conversations(1, 2)[0]["id"]
        updated_before = duck_env.rows(
            f"SELECT updated_at FROM normalized.feedback WHERE external_id = '{conversation_id}'"
        )
        p.sandbox.add_reply(
            SECRETS["acme"], conversation_id, "<p>One more thing</p>", 1767225600 + 90 * 3600
        )
        [outcome] = duck_env.ingest()
        assert outcome.rows_loaded == 1
        updated_after = duck_env.rows(
            f"SELECT updated_at, text, rating FROM normalized.feedback "
            f"WHERE external_id = '{conversation_id}'"
        )
        assert updated_after[0][0] > updated_before[0][0]
        # text stays the opening message as plain text (no HTML), parts stay in raw
        assert "<" not in updated_after[0][1]
        raw = duck_env.rows(
            "SELECT conversation_parts FROM raw_intercom.conversations "
            f"WHERE id = '{conversation_id}'"
        )
        assert "One more thing" in str(raw[0][0])
    finally:
        p.sandbox.server.stop()


def test_rate_limit_and_server_errors_are_retried(duck_env, platform):
    platform.seed("acme", 3)
    duck_env.write_tenants({"acme": [platform.instance("acme")]})
    platform.sandbox.server.faults.queue = [429, 503]
    [outcome] = duck_env.ingest()
    assert outcome.status == "ok", outcome.error
    assert outcome.rows_normalized == 3


def test_bad_credentials_fail_only_that_instance(duck_env, platform, monkeypatch):
    platform.seed("acme", 2)
    platform.seed("globex", 2)
    globex = platform.instance("globex")
    secret_env = "api_key_env" if platform.name == "discourse" else "token_env"
    monkeypatch.setenv("REVOKED_SECRET", "revoked-secret-value-55")
    globex[secret_env] = "REVOKED_SECRET"
    duck_env.write_tenants({"acme": [platform.instance("acme")], "globex": [globex]})
    good, bad = duck_env.ingest()
    assert good.status == "ok" and good.rows_normalized == 2
    assert bad.status == "failed"
    # The status the platform answers an unknown secret with, named precisely (a bare "401"
    # could also be in a port of the URL).
    status = AUTH_FAILURES[platform.name]
    failed = f"{platform.name} source globex.main failed: HTTPError: {status} for url: "
    assert bad.error.startswith(failed + f"{platform.url}/globex/"), bad.error
    assert "revoked-secret-value-55" not in bad.error
    # Failed at once: auth errors are not retried.
    globex_requests = [r for r in platform.sandbox.server.requests if r.path.startswith("/globex")]
    assert len(globex_requests) == 1


def test_two_tenants_never_share_tokens_or_rows(env, platform):
    platform.seed("acme", 3)
    platform.seed("globex", 2, start=50)
    env.write_tenants(
        {"acme": [platform.instance("acme")], "globex": [platform.instance("globex")]}
    )
    outcomes = env.ingest()
    assert [o.status for o in outcomes] == ["ok", "ok"], [o.error for o in outcomes]
    counts = env.rows("SELECT tenant_id, count(*) FROM normalized.feedback GROUP BY 1 ORDER BY 1")
    assert counts == [("acme", 3), ("globex", 2)]
    for request in platform.sandbox.server.requests:
        tenant = request.path.split("/")[1]
        carried = request.headers.get("authorization", "") + request.headers.get("api-key", "")
        assert SECRETS[tenant] in carried
        other = next(t for t in SECRETS if t != tenant)
        assert SECRETS[other] not in carried


def test_a_tenant_added_at_run_time_is_ingested_at_the_next_tick(duck_env, monkeypatch):
    p = _platform("discourse")
    for tenant, secret in SECRETS.items():
        monkeypatch.setenv(f"{tenant.upper()}_DISCOURSE_SECRET", secret)
    try:
        p.seed("acme", 2)
        p.seed("globex", 2, start=10)
        duck_env.write_tenants({"acme": [p.instance("acme")]})
        _sensor_tick(duck_env)
        duck_env.write_tenants({"acme": [p.instance("acme")], "globex": [p.instance("globex")]})
        _sensor_tick(duck_env)
        schedule = duck_env.defs.resolve_schedule_def("ingest_discourse_schedule")
        context = dg.build_schedule_context(
            instance=duck_env.instance,
            scheduled_execution_time=datetime(2026, 1, 1, 1, 15, tzinfo=UTC),
            repository_def=duck_env.defs.get_repository_def(),
        )
        requested = sorted(r.partition_key for r in schedule.evaluate_tick(context).run_requests)
        assert requested == ["acme.main", "globex.main"]
        job = duck_env.defs.resolve_job_def("ingest_discourse")
        result = job.execute_in_process(instance=duck_env.instance, partition_key="globex.main")
        assert result.success
        # The raw run loads the instance; normalized/feedback is its own (automated) run.
        normalize = duck_env.defs.resolve_job_def("normalize_feedback")
        assert normalize.execute_in_process(instance=duck_env.instance).success
        assert duck_env.rows(
            "SELECT count(*) FROM normalized.feedback WHERE tenant_id = 'globex'"
        ) == [(2,)]
    finally:
        p.sandbox.server.stop()


def _sensor_tick(env: Any) -> None:
    result = tenants_file_sensor(dg.build_sensor_context(instance=env.instance))
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            env.instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)


def test_a_machine_without_the_local_dlt_state_asks_only_for_newer(env, monkeypatch):
    """No worker-local state: the dlt pipelines folder (the incremental cursor's local copy)
    deleted between two runs, as on another machine: dlt restores the state from the warehouse
    and the second run asks X only for posts after the cursor."""
    p = _platform("twitter")
    monkeypatch.setenv("ACME_TWITTER_SECRET", SECRETS["acme"])
    try:
        p.seed("acme", 5)
        env.write_tenants({"acme": [p.instance("acme")]})
        [first] = env.ingest()
        assert first.status == "ok", first.error
        local_state = env.tmp_path / "data" / "dlt"
        assert local_state.is_dir()
        shutil.rmtree(local_state)

        p.add_newer("acme", 2, start=6)
        p.sandbox.server.requests.clear()
        [second] = env.ingest()
        assert second.status == "ok", second.error
        _assert_asked_only_for_newer(p, second)
        assert env.rows("SELECT count(*) FROM normalized.feedback") == [(7,)]
    finally:
        p.sandbox.server.stop()
