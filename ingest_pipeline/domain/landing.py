"""The landing bucket: object keys `<kind>/<tenant>/<anything>` and presigned upload URLs.

KEY_LAYOUTS declares each landing kind's key layout, once: its name (the key's first folder),
whether clients upload it (`upload-url`, the intake's POST /uploads: exactly the `uploaded` kinds
are accepted) and its channel (a crawl batch's partner folder, a webhook delivery's provider).
Parsing keys, refusing keys outside a layout and issuing upload URLs all read it; the Dagster
side (defs/landing/kinds.py) pairs each layout with its reader and asset. This module stays free
of Dagster: the intake imports it.

A client asks for an upload URL (`ingest-pipeline upload-url`), which records the upload as
Created in `normalized.uploads`, and PUTs the file straight to the object store; the landing
sensors take it from there. Credentials come from the standard AWS variables; the endpoint from
INGEST_S3_ENDPOINT_URL (MinIO, the local emulator; empty means AWS).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from ingest_pipeline.domain.entities import UPLOADS
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import Settings

WEBHOOK_PROVIDERS = ("intercom", "stripe")
MAX_WEBHOOK_BYTES = 1024 * 1024  # the intake answers 413 above this: no delivery is bigger
DEFAULT_EXPIRES_SECONDS = 3600
MAX_EXPIRES_SECONDS = 7 * 24 * 3600  # S3's own limit for presigned URLs
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_KEY_BYTES = 1024  # S3's limit for an object key (UTF-8 bytes)
# Kept in upload keys: enough for any real name, and within the 255 bytes file systems allow
# once the object is downloaded.
MAX_FILENAME_BYTES = 200
# What a cut keeps at the end of a name: one or two short suffixes (".csv", ".log.gz").
_EXTENSION = re.compile(r"(?:\.[A-Za-z0-9]{1,10}){1,2}\Z")


class LandingError(ValueError):
    """A landing request that cannot be honoured (unknown kind, bad expiry, ...)."""


@dataclass(frozen=True)
class LandingKey:
    kind: str
    tenant: str
    rest: str
    # crawl/<tenant>/<partner>/...: the partner; webhooks/<provider>/<tenant>/...: the provider
    channel: str | None = None


@dataclass(frozen=True)
class KeyLayout:
    """Where the objects of one landing kind are: `<kind>/<tenant>/<rest>`, or with `providers`
    `<kind>/<provider>/<tenant>/<rest>` (the provider one of them, the key's channel)."""

    kind: str  # the key's first folder; also the name of its sensor, job and uploads
    rest: str = "<name>"  # what follows the tenant, as `pattern` shows it
    uploaded: bool = True  # clients upload it through a presigned URL (upload-url, the intake)
    # <kind>/<tenant>/<partner>/<name>: the partner (the first folder after the tenant) is the
    # key's channel, and a key without one is refused.
    partner_folder: bool = False
    # <kind>/<provider>/<tenant>/<rest>: the provider (one of these) is the key's channel.
    providers: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        """What the kind's sensor lists."""
        return f"{self.kind}/"

    @property
    def pattern(self) -> str:
        """The layout as a key refused for being outside it is told."""
        provider = f"<{'|'.join(self.providers)}>/" if self.providers else ""
        partner = "<partner>/" if self.partner_folder else ""
        return f"{self.kind}/{provider}<tenant>/{partner}{self.rest}"

    def parse(self, key: str) -> LandingKey | None:
        """The key's parts, or None if it is not in this layout."""
        folders = 3 if self.providers else 2  # the folders before <rest>
        parts = key.split("/", folders)
        if len(parts) != folders + 1 or parts[0] != self.kind or not all(parts[1:]):
            return None
        if self.providers:
            _, provider, tenant, rest = parts
            if provider not in self.providers:
                return None
            return LandingKey(self.kind, tenant, rest, provider)
        _, tenant, rest = parts
        partner = rest.split("/", 1)[0] if self.partner_folder and "/" in rest else None
        return LandingKey(self.kind, tenant, rest, partner)


# Every landing kind, once; each has its sensor, job and asset (defs/landing/kinds.py).
KEY_LAYOUTS = (
    KeyLayout("logs"),
    KeyLayout("events"),
    KeyLayout("crawl", partner_folder=True),
    # Landed by the intake itself, once it has verified the delivery's signature.
    KeyLayout(
        "webhooks", "<yyyy-mm-dd>/<event id>.json", uploaded=False, providers=WEBHOOK_PROVIDERS
    ),
)
_LAYOUTS = {layout.kind: layout for layout in KEY_LAYOUTS}
UPLOAD_KINDS = tuple(layout.kind for layout in KEY_LAYOUTS if layout.uploaded)


def key_layout(kind: str) -> KeyLayout:
    """The declared layout of `kind`; KeyError for a kind that is not declared."""
    return _LAYOUTS[kind]


def parse_object_key(key: str) -> LandingKey | None:
    """`<kind>/<tenant>/<anything>` (webhooks: `webhooks/<provider>/<tenant>/<anything>`), or
    None for a key outside every layout."""
    layout = _LAYOUTS.get(key.split("/", 1)[0])
    return layout.parse(key) if layout else None


def safe_filename(filename: str, max_bytes: int = MAX_FILENAME_BYTES) -> str:
    """The base name with anything but letters, digits, dot, dash and underscore replaced,
    cut to `max_bytes` (ASCII: bytes are characters) keeping its extension."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", base).strip("._") or "upload"
    if len(name) <= max_bytes:
        return name
    found = _EXTENSION.search(name)
    extension = found.group() if found and len(found.group()) < max_bytes // 2 else ""
    return name[: max_bytes - len(extension)] + extension


# botocore's standard retry mode: backoff on throttling, 5xx and connection errors.
STANDARD_RETRIES = BotoConfig(retries={"mode": "standard", "max_attempts": 5})


def s3_client(settings: Settings, config: BotoConfig = STANDARD_RETRIES) -> Any:
    """An S3 client on the configured endpoint, from a session of its own: boto3's shared
    default session is not safe to create clients from on several threads."""
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.s3_endpoint_url or None, config=config
    )


@dataclass(frozen=True)
class UploadUrl:
    upload_id: str
    object_key: str
    url: str
    expires_at: datetime


def issue_upload_url(
    settings: Settings,
    tenant: str,
    kind: str,
    filename: str | None = None,
    expires_seconds: int = DEFAULT_EXPIRES_SECONDS,
    now: datetime | None = None,
    client: Any = None,
    warehouse: Warehouse | None = None,
) -> UploadUrl:
    """Presign a PUT for a new object under `<kind>/<tenant>/` and record the upload Created.
    A long-lived caller (the intake) passes its own S3 client and warehouse."""
    if kind not in UPLOAD_KINDS:
        raise LandingError(f"kind must be one of {', '.join(UPLOAD_KINDS)}, not {kind!r}")
    if not 1 <= expires_seconds <= MAX_EXPIRES_SECONDS:
        raise LandingError(f"expires must be 1..{MAX_EXPIRES_SECONDS} seconds")
    now = now or datetime.now(UTC)
    upload_id = uuid.uuid4().hex
    prefix = f"{kind}/{tenant}/{now:%Y-%m-%d}/{upload_id}-"
    room = MAX_KEY_BYTES - len(prefix.encode("utf-8"))
    if room < 16:  # tenant names are short in practice; a key needs room for a name too
        raise LandingError(f"tenant name too long for an object key ({MAX_KEY_BYTES} bytes)")
    key = prefix + safe_filename(filename or f"{kind}.dat", min(room, MAX_FILENAME_BYTES))
    url = (client or s3_client(settings)).generate_presigned_url(
        "put_object",
        Params={"Bucket": settings.landing_bucket, "Key": key},
        ExpiresIn=expires_seconds,
    )
    (warehouse or Warehouse(settings.resolved_warehouse_url)).upsert(
        UPLOADS,
        [
            {
                "upload_id": upload_id,
                "tenant_id": tenant,
                "kind": kind,
                "object_key": key,
                "status": "Created",
                "created_at": now,
            }
        ],
    )
    return UploadUrl(upload_id, key, url, now + timedelta(seconds=expires_seconds))
