"""The intake's view of the tenants file: each tenant's `intake` block, re-read when it changes.

The file is stat-ed per request and parsed again only when its mtime, size or inode changed,
so onboarding a tenant needs no restart. Secret *values* are never cached: the env var a block
names is read at each request, so rotating a secret (and restarting nothing) takes effect on
the next delivery.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ingest_pipeline.domain.tenants import (
    TenantIntake,
    TenantsFileError,
    TenantsFileView,
    load_intake_configs,
)
from ingest_pipeline.settings import Settings


class IntakeStartupError(RuntimeError):
    """The service refuses to start; the message says why (env var names, never values)."""


class TenantIntakes:
    """{tenant: TenantIntake} of the tenants file, reloaded when the file changes
    (`TenantsFileView`: the last valid version stays in force while an edit is invalid)."""

    def __init__(self, path: Path, refresh: Callable[[], None] | None = None) -> None:
        self.path = path
        self._view = TenantsFileView(path, load_intake_configs, "intake", refresh)

    def all(self) -> dict[str, TenantIntake]:
        return self._view.get()

    def get(self, tenant: str) -> TenantIntake | None:
        return self.all().get(tenant)


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
