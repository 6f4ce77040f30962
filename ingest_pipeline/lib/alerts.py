"""Alerts: one JSON POST per alert to INGEST_ALERT_WEBHOOK_URL, as a Slack incoming webhook reads it,
and/or one e-mail per alert to INGEST_ALERT_EMAIL_TO through INGEST_ALERT_EMAIL_SMTP_HOST.

Rules kept here:
- The body has `text` (one line: what a person reads in Slack) and every field of
  `Alert.payload()`; fields that do not apply are null. `url` links the run or asset in the
  Dagster UI (INGEST_UI_BASE_URL).
- An e-mail's subject is `[ingest-pipeline] ` and the alert's text; its plain-text body lists
  every field of the payload as `name: value` (null as `-`), and the same JSON as the webhook's
  is attached (`alert.json`). Standard library only: smtplib and email.message.
- A repeat of the same alert (same kind and subject: the job, tenant, instance and error of a
  failed run; the asset and check of a check; the name of a failing sensor) within
  INGEST_ALERT_QUIET_MINUTES is folded into the first: not sent again, by any channel. When each
  was last sent lives in the Dagster instance's key-value store, so every sensor, every daemon
  restart and every code server sees the same. One fold check per alert, then every configured
  channel (webhook, e-mail) is tried; the alert counts as sent if at least one delivered it.
- Delivery is retried. Webhook: urllib3's Retry (connection errors and 5xx, three times with
  backoff). E-mail: three attempts with backoff on connection errors, a dropped connection and
  4xx answers; 5xx, TLS and login failures are not retried. A channel that still fails is
  logged, never raised: an alert never fails a run or a tick. If no channel delivered it, the
  alert is not marked sent, so the next occurrence tries again.
- STARTTLS only when INGEST_ALERT_EMAIL_STARTTLS (certificates verified); a login only when
  INGEST_ALERT_EMAIL_SMTP_USER is set. Every network step has a 5 s timeout.
- No secret reaches an alert or a log: the webhook URL (a Slack webhook's secret) and the SMTP
  password are SecretStr and never logged; a failed delivery logs the exception's type (and the
  HTTP status or SMTP code), never its text, which may echo the URL or the server's answer. An
  error is its first line only, with the value of every environment variable named like a
  secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`) replaced by `***`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import dagster as dg
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ingest_pipeline.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("run_failure", "check", "tick_failure", "paused", "stale")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
_KV_PREFIX = "ingest/alert_sent/"
TIMEOUT_SECONDS = 5
SUBJECT_PREFIX = "[ingest-pipeline] "
EMAIL_ATTEMPTS = 3
EMAIL_BACKOFF_SECONDS = 0.5  # then twice as long before each further attempt


@dataclass(frozen=True)
class Alert:
    kind: str
    text: str
    subject: str  # what makes two alerts of a kind "the same" (folding); not sent
    job: str | None = None
    run_id: str | None = None
    tenant: str | None = None
    source_instance: str | None = None
    partition: str | None = None
    asset: str | None = None
    check: str | None = None
    severity: str | None = None
    error: str | None = None
    url: str | None = None

    def payload(self) -> dict[str, Any]:
        body = asdict(self)
        del body["subject"]
        return body

    @property
    def fold_key(self) -> str:
        digest = hashlib.sha256(f"{self.kind}\0{self.subject}".encode()).hexdigest()[:32]
        return _KV_PREFIX + digest


def first_line(message: str | None, limit: int = 300) -> str | None:
    """An error's first non-empty line, secrets masked, at most `limit` characters."""
    if not message:
        return None
    line = next((part.strip() for part in message.splitlines() if part.strip()), "")
    return redact(line)[:limit] or None


def redact(text: str) -> str:
    """The text with the value of every secret-named environment variable replaced by ***."""
    for name, value in os.environ.items():
        if len(value) >= 4 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, "***")
    return text


def run_url(settings: Settings, run_id: str) -> str:
    return f"{settings.ui_base_url.rstrip('/')}/runs/{run_id}"


def asset_url(settings: Settings, asset_key: dg.AssetKey) -> str:
    return f"{settings.ui_base_url.rstrip('/')}/assets/{'/'.join(asset_key.path)}"


def send(alert: Alert, instance: dg.DagsterInstance, settings: Settings) -> bool:
    """Deliver the alert to every configured channel unless the same one was sent within the
    quiet window; True if at least one channel delivered it."""
    channels = _channels(settings)
    if not channels:
        return False
    quiet = settings.alert_quiet_minutes * 60
    last = instance.run_storage.get_cursor_values({alert.fold_key}).get(alert.fold_key)
    if last is not None and time.time() - float(last) < quiet:
        log.info("alert %s (%s) folded: sent within the quiet window", alert.kind, alert.subject)
        return False
    # Every channel is tried (a list, not any() over a generator, which would stop at the first).
    if not any([deliver(alert, settings) for deliver in channels]):
        return False
    instance.run_storage.set_cursor_values({alert.fold_key: str(time.time())})
    return True


def _channels(settings: Settings) -> list[Callable[[Alert, Settings], bool]]:
    channels: list[Callable[[Alert, Settings], bool]] = []
    if settings.alert_webhook_url.get_secret_value():
        channels.append(_webhook)
    if settings.alert_email_recipients:
        channels.append(_email)
    return channels


def _webhook(alert: Alert, settings: Settings) -> bool:
    return _post(settings.alert_webhook_url.get_secret_value(), webhook_body(alert))


def webhook_body(alert: Alert) -> dict[str, Any]:
    return {"text": alert.text, **alert.payload()}


def _post(url: str, body: dict[str, Any]) -> bool:
    retry = Retry(
        total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504), allowed_methods=None
    )
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        try:
            session.post(url, json=body, timeout=TIMEOUT_SECONDS).raise_for_status()
        except requests.RequestException as exc:
            # The exception's text holds the URL: only its type goes to the log.
            log.warning("alert %s not delivered: the webhook failed (%s)", body["kind"], _kind(exc))
            return False
    return True


def _kind(exc: requests.RequestException) -> str:
    status = exc.response.status_code if exc.response is not None else None
    return f"{type(exc).__name__}{f', HTTP {status}' if status else ''}"


def email_message(alert: Alert, settings: Settings) -> EmailMessage:
    """The alert as an e-mail: its text as the subject, its fields in the body, its JSON attached."""
    sender = settings.alert_email_from
    message = EmailMessage()
    # One line whatever the text holds: a line break in a header is refused by the email package.
    message["Subject"] = SUBJECT_PREFIX + " ".join(alert.text.split())
    message["From"] = sender
    message["To"] = ", ".join(settings.alert_email_recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    # The domain given: make_msgid would otherwise ask the resolver for this host's name.
    message["Message-ID"] = make_msgid("alert", domain=sender.rpartition("@")[2] or "localhost")
    fields = "\n".join(
        f"{name}: {'-' if value is None else value}" for name, value in alert.payload().items()
    )
    message.set_content(f"{fields}\n")
    body = json.dumps(webhook_body(alert), ensure_ascii=False, indent=2).encode()
    message.add_attachment(body, maintype="application", subtype="json", filename="alert.json")
    return message


def _email(alert: Alert, settings: Settings) -> bool:
    try:
        message = email_message(alert, settings)
    except Exception as exc:  # a setting the email package refuses (e.g. a line break)
        log.warning("alert %s: e-mail not built (%s)", alert.kind, type(exc).__name__)
        return False
    server = f"{settings.alert_email_smtp_host}:{settings.alert_email_smtp_port}"
    for attempt in range(1, EMAIL_ATTEMPTS + 1):
        try:
            refused = _smtp_send(message, settings)
        except Exception as exc:
            # Only the type and SMTP code are logged: the text may echo the server's answer.
            retry = _transient(exc) and attempt < EMAIL_ATTEMPTS
            log.warning(
                "alert %s: e-mail via %s failed (%s), attempt %d of %d%s",
                alert.kind,
                server,
                _smtp_kind(exc),
                attempt,
                EMAIL_ATTEMPTS,
                ", retrying" if retry else "; not delivered",
            )
            if not retry:
                return False
            time.sleep(EMAIL_BACKOFF_SECONDS * 2 ** (attempt - 1))
        else:
            if refused:
                log.warning(
                    "alert %s: e-mail refused for %d recipient(s)", alert.kind, len(refused)
                )
            return True
    return False


def _smtp_send(message: EmailMessage, settings: Settings) -> dict[str, Any]:
    """One attempt; the recipients refused (the others got it). Raises on any failure."""
    host, port = settings.alert_email_smtp_host, settings.alert_email_smtp_port
    with smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS) as smtp:
        if settings.alert_email_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.alert_email_smtp_user:
            smtp.login(
                settings.alert_email_smtp_user,
                settings.alert_email_smtp_password.get_secret_value(),
            )
        refused = smtp.send_message(message)
        # Delivered: a goodbye the server answers oddly is no reason to send it again.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
    return refused


def _transient(exc: Exception) -> bool:
    """Worth another attempt: a connection that failed or dropped, or a 4xx answer."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, ssl.SSLError | smtplib.SMTPException):
        # Certificates, the server without STARTTLS or AUTH: the same again would fail again.
        return False
    return isinstance(exc, OSError)  # refused, reset, timed out, name not resolved


def _smtp_kind(exc: Exception) -> str:
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}{f', SMTP {code}' if code else ''}"
