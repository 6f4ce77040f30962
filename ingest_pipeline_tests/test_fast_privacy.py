"""Pseudonymization rules (domain/privacy.py): tokens per tenant key, identifiers whole, addresses
inside free text, drops, raw rows and Arrow batches scrubbed, reject payloads, the tenants file's
privacy settings."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from ingest_pipeline.domain.privacy import Pseudonymizer, TenantPrivacy
from ingest_pipeline.domain.tenants import MissingSecretError, read_source_instances

ACME = Pseudonymizer(b"acme-key", frozenset({"ip", "author_name", "text"}), frozenset({"url"}))
GLOBEX = Pseudonymizer(b"globex-key", ACME.pii, ACME.drop)


def test_a_value_has_one_token_per_tenant_key_and_a_token_stays_itself() -> None:
    token = ACME.token("203.0.113.7")
    assert token.startswith("pii_") and len(token) == 36
    assert ACME.token("203.0.113.7") == token  # the same in every run
    assert GLOBEX.token("203.0.113.7") != token  # another tenant, another token
    assert ACME.token(token) == token  # applying the rules twice changes nothing
    assert "acme-key" not in repr(ACME)


def test_identifiers_are_replaced_whole_in_canonical_form() -> None:
    assert ACME.field("ip", " 203.0.113.7 ") == ACME.token("203.0.113.7")
    assert ACME.field("ip", "2001:DB8::1") == ACME.token("2001:db8::1")
    assert ACME.field("author_name", "Jane@Example.org") == ACME.token("jane@example.org")
    assert ACME.field("author_name", 42) == ACME.token("42")
    assert ACME.field("ip", None) is None
    assert ACME.field("url", "https://x.example/a") is None  # dropped
    assert ACME.field("title", "kept as is") == "kept as is"  # not listed


def test_free_text_keeps_its_words_and_loses_its_addresses() -> None:
    text = "Mail Jane@Example.org from 203.0.113.7 or [2001:db8::1] at 12:30:45, v1.2.3 ok"
    scrubbed = ACME.field("text", text)
    assert scrubbed == (
        f"Mail {ACME.token('jane@example.org')} from {ACME.token('203.0.113.7')} or "
        f"[{ACME.token('2001:db8::1')}] at 12:30:45, v1.2.3 ok"
    )
    # An address in a text and the same address as an identifier: one token (they join).
    assert ACME.token("203.0.113.7") == ACME.field("ip", "203.0.113.7")
    assert ACME.field("text", {"note": "to a@b.io", "n": 1}) == {
        "note": f"to {ACME.token('a@b.io')}",
        "n": 1,
    }
    assert ACME.field("text", ACME.field("text", text)) == scrubbed


def test_a_raw_row_loses_the_values_its_personal_fields_came_from() -> None:
    raw = {
        "user": {"name": "jdoe", "id": 7},
        "body": "write to jdoe@corp.example",
        "site": "https://x.example/a",
        "tags": ["jdoe", "other"],
    }
    mapped = {"author_name": "jdoe", "author_id": 7, "text": raw["body"], "url": raw["site"]}
    scrubbed = ACME.raw_row(raw, mapped)
    token = ACME.token("jdoe")
    assert scrubbed == {
        "user": {"name": token, "id": 7},  # a number stays as sent
        "body": f"write to {ACME.token('jdoe@corp.example')}",
        "site": None,  # dropped
        "tags": [token, "other"],
    }


def test_an_arrow_batch_of_raw_rows_is_scrubbed_column_by_column() -> None:
    raw = pa.table(
        {
            "who": ["ann", "bob", None],
            "note": ["x", "ping ann@a.example", "from 10.0.0.1"],
            "n": [1, 2, 3],
        }
    )
    mapped = {"author_name": raw.column("who"), "text": raw.column("note")}
    scrubbed = ACME.raw_table(raw, mapped)
    assert scrubbed.column("who").to_pylist() == [ACME.token("ann"), ACME.token("bob"), None]
    assert scrubbed.column("note").to_pylist() == [
        "x",
        f"ping {ACME.token('ann@a.example')}",
        f"from {ACME.token('10.0.0.1')}",
    ]
    assert scrubbed.column("n").to_pylist() == [1, 2, 3]


def test_normalized_columns_and_tables_are_pseudonymized() -> None:
    table = pa.table({"ip": ["10.0.0.1", None], "url": ["https://a", "https://b"], "k": [1, 2]})
    out = ACME.table(table)
    assert out.schema == table.schema
    assert out.to_pylist() == [
        {"ip": ACME.token("10.0.0.1"), "url": None, "k": 1},
        {"ip": None, "url": None, "k": 2},
    ]


def test_a_reject_payload_loses_every_address_and_its_personal_fields() -> None:
    line = json.dumps({"ip": "10.0.0.9", "author_name": "ann", "note": "by bob@b.example"})
    payload = json.loads(ACME.payload(line))
    assert payload == {
        "ip": ACME.token("10.0.0.9"),
        "author_name": ACME.token("ann"),
        "note": f"by {ACME.token('bob@b.example')}",
    }
    assert ACME.payload("not json from 10.0.0.9") == f"not json from {ACME.token('10.0.0.9')}"


def write(tmp_path: Path, tenants: dict) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": tenants}), encoding="utf-8")
    return path


def test_the_tenants_file_gives_each_instance_its_rules_and_key(tmp_path, monkeypatch) -> None:
    rss = {"type": "rss", "name": "blog", "url": "https://x.example/feed"}
    path = write(
        tmp_path,
        {
            "acme": {
                "pii_key_env": "ACME_PII_KEY",
                "pii_keep_raw": True,
                "landing": {"events": {"pii": ["ip"]}},
                "sources": [{**rss, "pii": ["author"], "pii_drop": ["summary"]}],
            },
            "globex": {"sources": [{**rss, "pii": ["author"]}]},  # no key named
            "initech": {"sources": [rss]},  # nothing personal: no key needed
        },
    )
    sources = read_source_instances(path)
    acme, initech = sources.instances
    assert acme.privacy is not None and initech.privacy is None
    assert (acme.privacy.pii, acme.privacy.drop) == ({"author"}, {"summary"})
    assert acme.privacy.keep_raw and acme.privacy.key_env == "ACME_PII_KEY"
    [invalid] = sources.invalid
    assert invalid.tenant == "globex" and "pii_key_env" in invalid.reason
    with pytest.raises(MissingSecretError, match="ACME_PII_KEY"):
        acme.privacy.pseudonymizer()
    monkeypatch.setenv("ACME_PII_KEY", "k1")
    assert acme.privacy.pseudonymizer().field("author", "x") == Pseudonymizer(
        b"k1", frozenset({"author"}), frozenset()
    ).token("x")
    with pytest.raises(ValueError, match="author_nam not a personal text field"):
        acme.privacy.model_copy(update={"pii": frozenset({"author_nam"})}).check_fields(
            "items", ["author", "summary", "title", "external_id"]
        )


def test_landed_kinds_have_their_own_rules() -> None:
    privacy = TenantPrivacy.model_validate(
        {"pii_key_env": "K", "landing": {"events": {"pii": ["ip"], "pii_drop": ["session_id"]}}}
    )
    events = privacy.landed("events")
    assert events is not None and events.pii == {"ip"} and events.drop == {"session_id"}
    assert privacy.landed("logs") is None
    with pytest.raises(ValueError, match="pii_key_env"):
        TenantPrivacy.model_validate({"landing": {"logs": {"pii": ["message"]}}}).landed("logs")
