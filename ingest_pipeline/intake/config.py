"""The intake's view of the tenants file: each tenant's `intake` block, re-read when it changes.

The file is stat-ed per request and parsed again only when its mtime, size or inode changed,
so onboarding a tenant needs no restart. Secret *values* are never cached: the env var a block
names is read at each request, so rotating a secret (and restarting nothing) takes effect on
the next delivery.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ingest_pipeline.domain.tenants import TenantIntake, TenantsFileError, load_intake_configs
from ingest_pipeline.settings import Settings

log = logging.getLogger(__name__)


class IntakeStartupError(RuntimeError):
    """The service refuses to start; the message says why (env var names, never values)."""


class TenantIntakes:
    """{tenant: TenantIntake} of the tenants file, reloaded when the file changes.

    A file that turns invalid keeps the last valid configuration in force (and logs why), so
    a typo in an edit does not take every tenant's intake down; one that was never valid
    raises TenantsFileError on each lookup.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: object = object()  # the file version last parsed (valid or not)
        self._configs: dict[str, TenantIntake] | None = None
        self._error: TenantsFileError | None = None

    def all(self) -> dict[str, TenantIntake]:
        try:
            stat = self.path.stat()
            stamp: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._seen:
                self._seen = stamp
                self._reload()
            if self._configs is None:
                assert self._error is not None
                raise self._error
            return self._configs

    def get(self, tenant: str) -> TenantIntake | None:
        return self.all().get(tenant)

    def _reload(self) -> None:
        try:
            self._configs, self._error = load_intake_configs(self.path), None
        except TenantsFileError as exc:
            kept = "keeping the last valid one" if self._configs is not None else "no intake"
            log.error("tenants file unusable (%s): %s", kept, exc)
            self._error = exc


def secret_value(env_name: str) -> str:
    """The current value of a secret env var ('' when unset)."""
    return os.environ.get(env_name, "")


def production_problems(settings: Settings, debug: bool) -> list[str]:
    """Why the service must not start in production (empty: it may). Names, never values."""
    if settings.env != "production":
        return []
    problems: list[str] = []
    if debug:
        problems.append("debug is on (INGEST_INTAKE_DEBUG / --debug)")
    try:
        configs = load_intake_configs(settings.tenants_file)
    except TenantsFileError as exc:
        return [*problems, str(exc)]
    named = {name for intake in configs.values() for name in intake.secret_env_names}
    missing = sorted(name for name in named if not secret_value(name))
    if missing:
        problems.append("secret env vars missing or empty: " + ", ".join(missing))
    return problems
