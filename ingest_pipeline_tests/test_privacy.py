"""Pseudonymization end to end: landed events and logs, a pulled CSV source, the metrics on top.

- The same IP gives the same token across runs; another tenant's key another token.
- The counted views (anti-gaming on ip) are the same with and without pseudonymization.
- With it on, no clear IP appears anywhere in the warehouse (every table of every schema, the
  rejects' payloads included) or in the Dagster event log.
- Raw keeps what the source sent only with `pii_keep_raw: true`; a dropped field is null.
"""

import json
from pathlib import Path
from typing import Any

import yaml
from dagster._serdes import serialize_value

from ingest_pipeline.cli.metrics_runs import build_metrics
from ingest_pipeline.domain.privacy import Pseudonymizer
from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.test_metrics import D as DAY
from ingest_pipeline_tests.test_metrics import fixture_events

CLEAR = "198.51.100."  # the IPs of the tenant without pseudonymization
SECRET = "203.0.113."  # the IPs of the tenants with it: never stored in clear
KEYS = {"ACME_PII_KEY": "acme-secret-key", "GLOBEX_PII_KEY": "globex-secret-key"}


def write_tenants(path: Path, tenants: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"tenants": tenants}), encoding="utf-8")


def events_ndjson(prefix: str) -> str:
    """test_metrics' anti-gaming fixture (views from the same ip within 10 minutes, the cap of
    5 a day), its letters A..D as IP addresses under `prefix`."""
    lines = []
    for row in fixture_events():
        ip = f"{prefix}{ord(row['ip']) - ord('A') + 1}"
        row = {**row, "ip": ip, "actor_id": f"user-{ip}", "occurred_at": row["occurred_at"]}
        row = {k: v for k, v in row.items() if k not in ("tenant_id", "raw_load_id", "ingested_at")}
        lines.append(json.dumps(row, default=str))
    return "\n".join(lines) + "\n"


def tokens(key_env: str) -> Pseudonymizer:
    return Pseudonymizer(KEYS[key_env].encode(), frozenset(), frozenset())


def test_landed_events_and_logs_are_pseudonymized_and_metrics_unchanged(
    duck_landing, monkeypatch
) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    env = duck_landing.env
    private = {"pii": ["ip", "actor_id"]}
    write_tenants(
        env.tenants_file,
        {
            "plain": {"sources": []},
            "acme": {
                "pii_key_env": "ACME_PII_KEY",
                "landing": {"events": private, "logs": {"pii": ["message"]}},
            },
            "globex": {"pii_key_env": "GLOBEX_PII_KEY", "landing": {"events": private}},
        },
    )
    bad_line = json.dumps({"event_id": "bad", "event_type": "VIEW", "ip": f"{SECRET}9"})
    duck_landing.put("events/plain/a.ndjson", events_ndjson(CLEAR))
    duck_landing.put("events/acme/a.ndjson", events_ndjson(SECRET) + bad_line + "\n")
    duck_landing.put("events/globex/a.ndjson", events_ndjson(SECRET))
    duck_landing.put(
        "logs/acme/app.log",
        f"2026-01-05T10:00:00Z INFO api login from {SECRET}1 by Jane@Example.org\n",
    )
    duck_landing.tick("events")
    duck_landing.tick("logs")
    # A later run: the same IP again in a new event gets the same token.
    later = {"event_id": "later", "event_type": "SAVE", "occurred_at": "2026-01-05T15:00:00Z"}
    duck_landing.put("events/acme/b.ndjson", json.dumps({**later, "ip": f"{SECRET}1"}) + "\n")
    duck_landing.tick("events")
    assert {u["status"] for u in duck_landing.uploads().values()} == {"Completed"}

    acme, globex = tokens("ACME_PII_KEY"), tokens("GLOBEX_PII_KEY")
    ip_of = dict(env.rows("SELECT tenant_id || ':' || event_id, ip FROM normalized.events"))
    assert ip_of["acme:e0"] == ip_of["acme:later"] == acme.token(f"{SECRET}1")
    assert ip_of["globex:e0"] == globex.token(f"{SECRET}1") != ip_of["acme:e0"]
    assert ip_of["plain:e0"] == f"{CLEAR}1"
    [(actor,)] = env.rows(
        "SELECT actor_id FROM normalized.events WHERE event_id = 'e0' AND tenant_id = 'acme'"
    )
    assert actor == acme.token(f"user-{SECRET}1")
    # An address in a log message: the same token as the events' ip column (they join).
    [(message,)] = env.rows("SELECT message FROM normalized.log_records")
    assert message == f"login from {acme.token(f'{SECRET}1')} by {acme.token('jane@example.org')}"
    [(payload,)] = env.rows(
        "SELECT payload FROM normalized.rejected_records WHERE tenant_id = 'acme'"
    )
    assert json.loads(payload)["ip"] == acme.token(f"{SECRET}9")

    result = build_metrics(env.defs, env.instance, DAY.date(), DAY.date())
    assert result.success
    counted = {
        tenant: env.rows(
            "SELECT item_id, raw_views, views, copies, saves, forks, votes "
            f"FROM metrics.item_metrics_daily WHERE tenant_id = '{tenant}' "
            f"AND metric_date = '{DAY.date()}' ORDER BY item_id"
        )
        for tenant in ("plain", "acme", "globex")
    }
    assert counted["plain"] and counted["plain"][0][1] > counted["plain"][0][2]  # anti-gaming on
    assert counted["acme"] == counted["plain"] == counted["globex"]

    assert_nowhere(env, SECRET)
    assert CLEAR in everything_in_the_warehouse(env)  # the scan sees clear values where they are


def test_a_pulled_source_keeps_raw_as_sent_only_when_told(env, tmp_path, monkeypatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "sku,name,link,updated,who,note\n"
        "s1,Lamp,https://x.example/1,2026-01-05T10:00:00Z,Jane Roe,ask jane@corp.example\n"
        "s2,Desk,not-a-url,2026-01-05T10:00:00Z,Jane Roe,from 203.0.113.5\n",
        encoding="utf-8",
    )
    mapping = {"external_id": "sku", "title": "name", "url": "link", "author": "who",
               "summary": "note", "published_at": "updated"}  # fmt: skip
    source = csv_instance(folder, mapping=mapping, pii=["author", "summary"], pii_drop=["url"])
    write_tenants(
        env.tenants_file,
        {
            "acme": {"pii_key_env": "ACME_PII_KEY", "sources": [source]},
            "globex": {"pii_key_env": "GLOBEX_PII_KEY", "pii_keep_raw": True, "sources": [source]},
        },
    )
    outcomes = env.ingest()
    assert [o.status for o in outcomes] == ["ok", "ok"], [o.error for o in outcomes]
    acme, globex = tokens("ACME_PII_KEY"), tokens("GLOBEX_PII_KEY")
    raw = {
        tenant: str(env.rows(f"SELECT * FROM raw_csv.{tenant}__catalog"))
        for tenant in ("acme", "globex")
    }
    assert "Jane Roe" not in raw["acme"] and acme.token("Jane Roe") in raw["acme"]
    assert "jane@corp.example" not in raw["acme"] and "203.0.113.5" not in raw["acme"]
    assert "Jane Roe" in raw["globex"] and "jane@corp.example" in raw["globex"]  # kept as sent
    items = {
        (t, sku): (author, summary, url)
        for t, sku, author, summary, url in env.rows(
            "SELECT tenant_id, external_id, author, summary, url FROM normalized.items"
        )
    }
    for tenant, p in (("acme", acme), ("globex", globex)):
        assert items[(tenant, "s1")] == (
            p.token("Jane Roe"),
            f"ask {p.token('jane@corp.example')}",
            None,  # dropped
        )
        # Its url would make it a reject; dropped before validation, it is none.
        assert items[(tenant, "s2")][1] == f"from {p.token('203.0.113.5')}"
    assert_nowhere(env, "Jane Roe", schemas=("normalized", "metrics"))


def everything_in_the_warehouse(env: Any, schemas: tuple[str, ...] | None = None) -> str:
    """Every row of every table of the given schemas (all but the system's), as text."""
    found = env.rows(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema "
        "NOT IN ('information_schema', 'pg_catalog', 'main') AND table_type = 'BASE TABLE'"
    )
    parts = []
    for schema, table in found:
        if schemas is None or schema in schemas:
            parts.append(str(env.rows(f'SELECT * FROM "{schema}"."{table}"')))
    return "\n".join(parts)


def assert_nowhere(env: Any, clear: str, schemas: tuple[str, ...] | None = None) -> None:
    """`clear` in no table of the warehouse and in no event of the Dagster event log."""
    assert clear not in everything_in_the_warehouse(env, schemas)
    for run in env.instance.get_runs():
        for entry in env.instance.all_logs(run.run_id):
            assert clear not in serialize_value(entry), (run.job_name, entry.dagster_event_type)


def test_a_field_that_cannot_be_pseudonymized_fails_its_instance_alone(
    duck_env, tmp_path, monkeypatch
):
    (tmp_path / "a.csv").write_text("sku,name,link,updated\n1,a,https://x/1,2026-01-01\n")
    bad = csv_instance(tmp_path, "bad", pii=["published_at"])  # a timestamp, not text
    good = csv_instance(tmp_path, "good", pii=["title"])
    write_tenants(
        duck_env.tenants_file, {"acme": {"pii_key_env": "ACME_PII_KEY", "sources": [bad, good]}}
    )
    monkeypatch.setenv("ACME_PII_KEY", "k")
    outcomes = {o.instance.name: o for o in duck_env.ingest()}
    assert outcomes["good"].status == "ok"
    assert outcomes["bad"].status == "failed"
    assert "csv source acme.bad: pii: published_at not a personal text field" in (
        outcomes["bad"].error
    )
    assert duck_env.rows("SELECT DISTINCT source_instance FROM normalized.items") == [("good",)]
