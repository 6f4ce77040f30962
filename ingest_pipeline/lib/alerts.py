"""Alerts: one JSON POST per alert to INGEST_ALERT_WEBHOOK_URL, as a Slack incoming webhook reads it.

Rules kept here:
- The body has `text` (one line: what a person reads in Slack) and every field of
  `Alert.payload()`; fields that do not apply are null. `url` links the run or asset in the
  Dagster UI (INGEST_UI_BASE_URL).
- A repeat of the same alert (same kind and subject: the job, tenant, instance and error of a
  failed run; the asset and check of a check; the name of a failing sensor) within
  INGEST_ALERT_QUIET_MINUTES is folded into the first: not sent again. When each was last sent
  lives in the Dagster instance's key-value store, so every sensor, every daemon restart and
  every code server sees the same.
- Delivery is retried (urllib3's Retry: connection errors and 5xx, three times with backoff).
  A webhook that still fails is logged, never raised: an alert never fails a run or a tick.
  The alert is then not marked sent, so the next occurrence tries again.
- No secret reaches an alert or a log: the webhook URL (a Slack webhook's secret) is a SecretStr
  and never logged; an error is its first line only, with the value of every environment
  variable named like a secret (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`) replaced by `***`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import asdict, dataclass
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
    """Post the alert unless the same one was sent within the quiet window; True if posted."""
    url = settings.alert_webhook_url.get_secret_value()
    if not url:
        return False
    quiet = settings.alert_quiet_minutes * 60
    last = instance.run_storage.get_cursor_values({alert.fold_key}).get(alert.fold_key)
    if last is not None and time.time() - float(last) < quiet:
        log.info("alert %s (%s) folded: sent within the quiet window", alert.kind, alert.subject)
        return False
    if not _post(url, {"text": alert.text, **alert.payload()}):
        return False
    instance.run_storage.set_cursor_values({alert.fold_key: str(time.time())})
    return True


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
