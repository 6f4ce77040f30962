"""The landing bucket: object keys `<kind>/<tenant>/<anything>` and presigned upload URLs.

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

LANDING_KINDS = ("logs", "events", "crawl")  # what clients upload (upload-url, the intake)
WEBHOOK_PROVIDERS = ("intercom", "stripe")
MAX_WEBHOOK_BYTES = 1024 * 1024  # the intake answers 413 above this: no delivery is bigger
# Every prefix a landing sensor watches: the uploads, and the webhook deliveries the intake lands
# as webhooks/<provider>/<tenant>/<yyyy-mm-dd>/<event id>.json.
SENSOR_KINDS = (*LANDING_KINDS, "webhooks")
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


def parse_object_key(key: str) -> LandingKey | None:
    """`<kind>/<tenant>/<anything>` (webhooks: `webhooks/<provider>/<tenant>/<anything>`), or
    None for a key outside the layout."""
    if key.startswith("webhooks/"):
        parts = key.split("/", 3)
        if len(parts) != 4 or parts[1] not in WEBHOOK_PROVIDERS or not parts[2] or not parts[3]:
            return None
        return LandingKey("webhooks", parts[2], parts[3], parts[1])
    parts = key.split("/", 2)
    if len(parts) != 3 or parts[0] not in LANDING_KINDS or not parts[1] or not parts[2]:
        return None
    kind, tenant, rest = parts
    partner = rest.split("/", 1)[0] if kind == "crawl" and "/" in rest else None
    return LandingKey(kind, tenant, rest, partner)


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
    if kind not in LANDING_KINDS:
        raise LandingError(f"kind must be one of {', '.join(LANDING_KINDS)}, not {kind!r}")
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
    UPLOADS.upsert(
        warehouse or Warehouse(settings.resolved_warehouse_url),
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
