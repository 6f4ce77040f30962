"""The tenants file in S3: `INGEST_TENANTS_FILE=s3://bucket/key`, one file for every machine.

Rules kept here:
- Every reader reads a local copy of the object (`settings.tenants_file`, under the data dir:
  `tenants/s3/<bucket>/<key>`), so the tenants file's readers, its change detection (mtime,
  size, inode) and its error messages are the same for a path and for a URL.
- `refresh_tenants_copy(settings)` brings the copy up to date: at most once every
  INGEST_TENANTS_REFRESH_SECONDS for all the processes of a machine (the time of the last look
  is a stamp file's mtime beside the copy), with a conditional GET on the object's ETag, and a
  new version moved into place in one step (a reader never sees half a file).
  `get_settings()` calls it, so the sensors, schedules, runs and CLI of any machine see an edit
  within that interval; the intake and the read API call it before they look at the file.
- The store unreachable, or the object gone: the copy in hand stays in force and a warning
  names the URL (a tenants file that vanished does not take every tenant down). With no copy
  at all, the readers fail as for a missing file, naming the copy; the warning names the URL.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"


def is_tenants_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(S3_SCHEME)


def tenants_copy_path(data_dir: Path, url: str) -> Path:
    """Where the local copy of the tenants file at `url` lives."""
    bucket, key = split_url(url)
    return data_dir / "tenants" / "s3" / bucket / key


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; ValueError when either is missing."""
    parts = urlsplit(url)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key or key.endswith("/"):
        raise ValueError(f"INGEST_TENANTS_FILE {url!r} is not an s3://bucket/key URL")
    return parts.netloc, key


def refresh_tenants_copy(
    url: str, copy: Path, endpoint_url: str, every_seconds: float, now: float | None = None
) -> bool:
    """Bring `copy` up to date with the object at `url` unless it was looked at less than
    `every_seconds` ago; True when a new version was written."""
    stamp = copy.with_name(f".{copy.name}.checked")
    now = time.time() if now is None else now
    try:
        if copy.is_file() and now - stamp.stat().st_mtime < every_seconds:
            return False
    except FileNotFoundError:
        pass
    copy.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    bucket, key = split_url(url)
    etag_file = copy.with_name(f".{copy.name}.etag")
    known = etag_file.read_text(encoding="utf-8") if copy.is_file() and etag_file.is_file() else ""
    # Imported here: settings.py imports this module, and most processes never read S3.
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body, etag = _get_if_changed(bucket, key, endpoint_url, known)
    except (BotoCoreError, ClientError) as exc:
        kept = "the copy in hand stays in force" if copy.is_file() else "no copy yet"
        log.warning(f"tenants file {url} could not be read ({kept}): {_reason(exc)}")
        return False
    if body is None:
        return False
    scratch = copy.with_name(f".{copy.name}.{os.getpid()}.{threading.get_ident()}")
    scratch.write_bytes(body)
    os.replace(scratch, copy)
    etag_file.write_text(etag, encoding="utf-8")
    log.info(f"tenants file {url}: new version {etag} in {copy}")
    return True


def _get_if_changed(
    bucket: str, key: str, endpoint_url: str, known_etag: str
) -> tuple[bytes | None, str]:
    """(the object's bytes, its ETag), or (None, the known ETag) when it has not changed."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    # Short: the intake and the read API look from a request (once per interval at most).
    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)
    request = {"Bucket": bucket, "Key": key}
    if known_etag:
        request["IfNoneMatch"] = known_etag
    try:
        answer = client.get_object(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"304", "NotModified"}:
            return None, known_etag
        raise
    return answer["Body"].read(), answer["ETag"]


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)  # a ClientError's
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message') or ''}".strip()
    return " ".join(str(exc).split())[:300]
