"""What a file source instance's input looked like when `ingest-pipeline ingest` last ingested it
whole: the fast path of a re-run on unchanged input.

An instance whose options name files (`path`, a local folder or an `s3://bucket/prefix`, and
`glob`: the csv type) has a fingerprint: a digest of its type, its options and, for every file
its listing returns, the file's path, size and modification time (on S3 also its ETag). When
both runs of an `ingest` of the instance succeed and no load was quarantined, the fingerprint
taken before its runs is recorded in `normalized.ingested_inputs`. The next `ingest` takes the
fingerprint again first; if it is the one recorded, the files hold nothing the warehouse does not
have already (dlt's incremental cursor would find no new file and leave nothing to normalize), so
no run is made: the summary line says `unchanged`, and when every instance asked for is unchanged
the CLI does not even load Dagster.

Rules it keeps:
- Taken before the runs: a file written or changed while they run changes the next fingerprint,
  so the next `ingest` runs (and finds it).
- Any doubt runs: an instance without files (an API, a feed), a listing that fails, no record,
  or a record from before a change of the instance's options or of any file all mean the
  instance's usual runs.
- Local folders are listed by the same `glob` call dlt's filesystem source makes. On S3 every
  object under the prefix is listed (more than the glob): a change beside the glob costs a run,
  never a file missed.
- Only `ingest` skips and records: schedules, sensors and the UI run as before, and a run
  that failed, or quarantined a load, records nothing.
- Light: the standard library, the warehouse and boto3 for an S3 prefix; no Dagster, no dlt.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from ingest_pipeline.domain.entities import INGESTED_INPUTS
from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.warehouse import Warehouse

# One listed file: its path under the instance's folder or prefix, size, and what says it changed.
ListedFile = tuple[str, int, str]


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    files: int
    bytes: int

    def describe(self) -> str:
        return f"{self.files} file{'s' if self.files != 1 else ''}, {self.bytes / 1e6:.1f} MB"


@dataclass(frozen=True)
class Unchanged:
    """An instance whose input is the one its last whole `ingest` had: nothing to run."""

    instance: SourceInstance
    fingerprint: Fingerprint
    run_id: str  # the raw run of that ingest

    def summary_line(self) -> str:
        return (
            f"{self.instance.type:<9} {self.instance.partition_key:<28} {'ok':<6} "
            f"unchanged ({self.fingerprint.describe()}) since run={self.run_id[:8]}: "
            "nothing to load"
        )


def take(instance: SourceInstance) -> Fingerprint | None:
    """The instance's fingerprint now; None if it reads no files or they cannot be listed."""
    path, pattern = instance.options.get("path"), instance.options.get("glob")
    if not isinstance(path, str) or not isinstance(pattern, str):
        return None
    try:
        files = _listed_s3(path) if path.startswith("s3://") else _listed_local(path, pattern)
    except Exception:  # the runs will say what is wrong with the folder, and fail alone
        return None
    described = {
        "type": instance.type,
        "options": instance.options,
        "files": files,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Fingerprint(digest, len(files), sum(size for _, size, _ in files))


def unchanged(
    warehouse: Warehouse, instance: SourceInstance, fingerprint: Fingerprint | None
) -> Unchanged | None:
    """The instance, if `fingerprint` (its `take()` now) is the one its last whole `ingest`
    recorded."""
    if fingerprint is None:
        return None
    try:
        rows = warehouse.fetch_all(
            f"SELECT fingerprint, run_id FROM {INGESTED_INPUTS.qualified} "
            "WHERE tenant_id = %s AND source_type = %s AND source_instance = %s",
            (instance.tenant, instance.type, instance.name),
        )
    except Exception:  # no such table yet (a warehouse from before it): the runs make it
        return None
    if rows and rows[0][0] == fingerprint.digest:
        return Unchanged(instance, fingerprint, rows[0][1])
    return None


def record(
    warehouse: Warehouse, instance: SourceInstance, fingerprint: Fingerprint, run_id: str
) -> None:
    """The instance's input as its whole `ingest` (raw run `run_id`) found it."""
    row = {
        "tenant_id": instance.tenant,
        "source_type": instance.type,
        "source_instance": instance.name,
        "fingerprint": fingerprint.digest,
        "files": fingerprint.files,
        "bytes": fingerprint.bytes,
        "run_id": run_id,
        "recorded_at": datetime.now(UTC),
    }
    warehouse.upsert(INGESTED_INPUTS, [row], compare=("fingerprint", "run_id"))


def _listed_local(path: str, pattern: str) -> list[ListedFile]:
    # dlt's filesystem source lists a local folder with this very call (`glob_files`).
    root = os.path.abspath(path.removeprefix("file://"))
    listed = []
    for name in glob.glob(os.path.join(root, pattern), recursive=True):
        stat = os.stat(name)
        if os.path.isfile(name):
            listed.append((os.path.relpath(name, root), stat.st_size, str(stat.st_mtime_ns)))
    return sorted(listed)


def _listed_s3(url: str) -> list[ListedFile]:
    import boto3  # only for an S3 prefix

    from ingest_pipeline.settings import get_settings

    parts = urlsplit(url)
    prefix = parts.path.lstrip("/")
    client = boto3.client("s3", endpoint_url=get_settings().s3_endpoint_url or None)
    listed: list[ListedFile] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=parts.netloc, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            changed = f"{item['LastModified'].isoformat()} {item.get('ETag', '')}"
            listed.append((item["Key"], int(item["Size"]), changed))
    return sorted(listed)
