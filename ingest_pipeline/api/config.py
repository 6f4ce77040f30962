"""The read API's view of the tenants file: each tenant's `api` block (which env var holds its
read token) and its source instances (the `stats` route), re-read when the file changes.

As the intake's view (`intake/config.py`): the file is stat-ed per request and parsed again
only when its mtime, size or inode changed, so onboarding a tenant or rotating which variable
holds its token needs no restart. A file that turns invalid keeps the last valid version in
force (and logs why); one that was never valid raises TenantsFileError on each lookup. Token
*values* are never cached: the env var is read at each request, so a rotated token works (and
the old one stops) on the next request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ingest_pipeline.domain.tenants import (
    SourceInstance,
    TenantApi,
    TenantsFileError,
    TenantsFileView,
    load_api_configs,
    load_source_instances,
)
from ingest_pipeline.settings import Settings


class ApiStartupError(RuntimeError):
    """The service refuses to start; the message says why (env var names, never values)."""


class TenantsView:
    """The tenants file as the read API needs it."""

    def __init__(self, path: Path, refresh: Callable[[], None] | None = None) -> None:
        self.api = TenantsFileView(path, load_api_configs, "read API tenants", refresh)
        self.instances = TenantsFileView(path, load_source_instances, "source instances", refresh)

    def read_token_env(self, tenant: str) -> str | None:
        """The env var that holds the tenant's read token (None: not readable over the API).
        Raises TenantsFileError when the file was never valid."""
        block: TenantApi | None = self.api.get().get(tenant)
        return block.read_token_env if block else None

    def source_instances(self, tenant: str) -> list[SourceInstance]:
        return [i for i in self.instances.get() if i.tenant == tenant]


def token_value(env_name: str) -> str:
    """The current value of a read-token env var ('' when unset)."""
    return os.environ.get(env_name, "")


def production_problems(settings: Settings) -> list[str]:
    """Why the service must not start in production (empty: it may). Names, never values."""
    if settings.env != "production":
        return []
    try:
        configs = load_api_configs(settings.tenants_file)
    except TenantsFileError as exc:
        return [str(exc)]
    named = {c.read_token_env for c in configs.values() if c.read_token_env}
    missing = sorted(name for name in named if not token_value(name))
    return ["read-token env vars missing or empty: " + ", ".join(missing)] if missing else []
