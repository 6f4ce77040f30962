"""Alerts by e-mail to a real SMTP server (aiosmtpd) on a free loopback port.

One message per alert with the alert's text as its subject and every field in its body; its
repeat within the quiet window folded; the login's password in no message and no log line, nor
the server's answer to a failed login; a 4xx answer retried, a refused login not; STARTTLS never
given up for plain text; a dead SMTP port neither raises nor keeps the webhook from its alert.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ingest_pipeline.lib import alerts
from ingest_pipeline.lib.alerts import Alert, send, webhook_body
from ingest_pipeline.settings import Settings
from ingest_pipeline_tests.test_alerts import Receiver

pytestmark = pytest.mark.integration

USER = "alerts"
PASSWORD = "smtp-pa55word-9c1e"
ECHOED = "echoed-by-the-server"  # what a server might say back about a failed login

ALERT = Alert(
    kind="run_failure",
    text="Run of ingest_csv (acme.catalog) failed: boom",
    subject="ingest_csv\0acme\0catalog\0boom",
    job="ingest_csv",
    run_id="r-1",
    tenant="acme",
    source_instance="catalog",
    partition="acme.catalog",
    severity="ERROR",
    error="boom",
    url="http://ui.example:3000/runs/r-1",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """aiosmtpd's handler: keeps every message; the first `fail_first` get a 451 at DATA."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.answered_451 = 0
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answered_451 < self.fail_first:
            self.answered_451 += 1
            return "451 4.3.0 try again later"
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        if (data.login, data.password) == (USER.encode(), PASSWORD.encode()):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 {ECHOED}")

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or b"", policy=email.policy.default)
            for e in self.envelopes
        ]


@contextmanager
def serve(mailbox: Mailbox, **options: Any) -> Iterator[Controller]:
    # aiosmtpd's Controller connects to its own port to know it is up: port 0 does not work.
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=mailbox.authenticate,
        auth_require_tls=False,  # a login over plain text: the test server has no TLS
        **options,
    )
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox: Mailbox) -> Iterator[Controller]:
    with serve(mailbox) as controller:
        yield controller


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as found:
        yield found


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Shorter backoff between attempts; every log line kept; no channel from the outside."""
    monkeypatch.setattr(alerts, "EMAIL_BACKOFF_SECONDS", 0.05)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("INGEST_ALERT_WEBHOOK_URL", "")
    monkeypatch.setenv("INGEST_ALERT_QUIET_MINUTES", "60")


def email_settings(monkeypatch: pytest.MonkeyPatch, port: int, **env: str) -> Settings:
    values = {
        "ALERT_EMAIL_TO": "ops@example.com, oncall@example.com",
        "ALERT_EMAIL_FROM": "alerts@pipeline.example",
        "ALERT_EMAIL_SMTP_HOST": "127.0.0.1",
        "ALERT_EMAIL_SMTP_PORT": str(port),
        "ALERT_EMAIL_STARTTLS": "false",
        "ALERT_EMAIL_SMTP_USER": "",
        "ALERT_EMAIL_SMTP_PASSWORD": "",
        **env,
    }
    for name, value in values.items():
        monkeypatch.setenv(f"INGEST_{name}", value)
    return Settings()


def test_an_alert_is_one_message_and_its_repeat_is_folded(
    smtp_server, mailbox, instance, monkeypatch
):
    settings = email_settings(monkeypatch, smtp_server.port)
    assert send(ALERT, instance, settings) is True
    assert send(ALERT, instance, settings) is False  # the same again within the quiet window
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "alerts@pipeline.example"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    [message] = mailbox.messages()
    assert message["Subject"] == "[ingest-pipeline] Run of ingest_csv (acme.catalog) failed: boom"
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert message["Message-ID"].endswith("@pipeline.example>") and message["Date"]
    body = message.get_body(("plain",)).get_content()
    lines = dict(line.split(": ", 1) for line in body.splitlines())
    assert set(lines) == set(ALERT.payload())
    assert lines["run_id"] == "r-1" and lines["url"] == "http://ui.example:3000/runs/r-1"
    assert lines["asset"] == "-" and lines["check"] == "-"  # null fields
    [attachment] = message.iter_attachments()
    assert attachment.get_filename() == "alert.json"
    assert json.loads(attachment.get_content()) == webhook_body(ALERT)
    # Another alert is not folded into it.
    other = Alert(kind="run_failure", text="Run of ingest_csv failed: other", subject="other")
    assert send(other, instance, settings) is True
    assert len(mailbox.envelopes) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_password_logs_in_and_is_never_shown(instance, monkeypatch, caplog):
    mailbox = Mailbox()
    with serve(mailbox, auth_required=True) as server:
        good = email_settings(
            monkeypatch,
            server.port,
            ALERT_EMAIL_SMTP_USER=USER,
            ALERT_EMAIL_SMTP_PASSWORD=PASSWORD,
        )
        assert PASSWORD not in repr(good) and PASSWORD not in str(good.model_dump())
        assert send(ALERT, instance, good) is True
        assert mailbox.logins == [(USER.encode(), PASSWORD.encode())]
        [envelope] = mailbox.envelopes
        assert PASSWORD.encode() not in (envelope.original_content or b"")
        # A refused login: not delivered, not tried again, logged without the server's answer.
        bad = email_settings(
            monkeypatch,
            server.port,
            ALERT_EMAIL_SMTP_USER=USER,
            ALERT_EMAIL_SMTP_PASSWORD=PASSWORD + "-old",
        )
        other = Alert(kind="check", text="Check failed", subject="c")
        assert send(other, instance, bad) is False
        # One attempt: smtplib tries each mechanism the server offers (PLAIN, then LOGIN).
        assert [password for _, password in mailbox.logins[1:]] == [f"{PASSWORD}-old".encode()] * 2
        assert len(mailbox.envelopes) == 1
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ingest_pipeline"))
    assert "SMTPAuthenticationError, SMTP 535), attempt 1 of 3; not delivered" in ours
    assert ECHOED not in ours  # (aiosmtpd's own log has it: the server's side)
    assert PASSWORD not in caplog.text  # no log line of any library


def test_a_4xx_answer_is_retried(instance, monkeypatch, caplog):
    mailbox = Mailbox(fail_first=2)
    with serve(mailbox) as server:
        assert send(ALERT, instance, email_settings(monkeypatch, server.port)) is True
    assert mailbox.answered_451 == 2 and len(mailbox.envelopes) == 1
    assert caplog.text.count("SMTPDataError, SMTP 451") == 2 and "retrying" in caplog.text


def test_starttls_is_never_given_up_for_plain_text(
    smtp_server, mailbox, instance, monkeypatch, caplog
):
    settings = email_settings(monkeypatch, smtp_server.port, ALERT_EMAIL_STARTTLS="true")
    assert send(ALERT, instance, settings) is False  # the server offers no STARTTLS
    assert mailbox.envelopes == []
    assert "(SMTPNotSupportedError), attempt 1 of 3; not delivered" in caplog.text


def test_a_dead_smtp_port_fails_quietly_and_the_webhook_still_gets_it(
    instance, monkeypatch, caplog
):
    settings = email_settings(monkeypatch, free_port())  # nothing listens there
    assert send(ALERT, instance, settings) is False
    assert caplog.text.count("ConnectionRefusedError") == 3  # three attempts
    assert "attempt 3 of 3; not delivered" in caplog.text
    # Not marked sent: with the webhook beside it, the next occurrence goes out there.
    receiver = Receiver()
    try:
        monkeypatch.setenv("INGEST_ALERT_WEBHOOK_URL", receiver.url)
        assert send(ALERT, instance, Settings()) is True
        assert [a["run_id"] for a in receiver.alerts] == ["r-1"]
        # Delivered by one channel: marked sent, so its repeat is folded on both.
        assert send(ALERT, instance, Settings()) is False
        assert len(receiver.alerts) == 1
    finally:
        receiver.server.shutdown()
