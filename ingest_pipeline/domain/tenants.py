"""The tenants file: tenants and, per tenant, the source instances to ingest.

Read at run time (never cached across runs), so a tenant is onboarded by editing the file.
Secrets are referenced by environment-variable name (`*_env` keys) and resolved only when a
source is built, so a secret value never sits in a config object that could be logged.

Each instance's settings are checked against its source type's options model
(`sources/<type>/options.py`, found by the registry) when the file is read, and a fault stays
where it starts: an instance with an unknown type or an invalid setting is left out (its
partition and schedule with it) and reported by name (tenant, instance, type, setting; never the
value, which may be a secret pasted by mistake) by `read_source_instances`, the tenants sensor's
tick and the CLI, while every other instance reads as before. What breaks the file itself (not
YAML, no `tenants` mapping, an entry without type or name, a bad tenant or instance name, the
same instance twice) is a `TenantsFileError` for the whole file.

A tenant may also have an `intake` block: the env-var names of the secrets the intake service
(`ingest-pipeline serve-intake`) checks its webhook signatures and upload tokens against, and
an `api` block: the env-var name of the token that reads its data over the read API
(`ingest-pipeline serve-api`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest_pipeline.domain.privacy import PRIVACY_KEYS, PrivacyRules, TenantPrivacy
from ingest_pipeline.lib.source_types import EnvName, UnknownSourceTypeError, options_model

# Checked with fullmatch: `$` alone would let a trailing newline through. Names go into
# partition keys, table and pipeline names and object keys: at most 63 characters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DEFAULT_INTAKE_RATE_LIMIT_PER_MINUTE = 600
# Run tags (`instance_run_tags`); a landing run has the tenant's alone.
TENANT_TAG = "ingest/tenant"
SOURCE_TAG = "ingest/source"
SOURCE_TYPE_TAG = "ingest/source_type"
INSTANCE_TAG = "ingest/instance"
SOURCE_INSTANCE_TAG = "ingest/source_instance"
_Block = TypeVar("_Block", bound=BaseModel)
T = TypeVar("T")
log = logging.getLogger(__name__)


class TenantsFileError(ValueError):
    """The tenants file is missing or invalid; the message says where."""


class MissingSecretError(RuntimeError):
    """A source names a secret env var that is not set (the message names the var, not a value)."""


class SourceInstance(BaseModel):
    """One configured source of one tenant. `options`: its type's settings, validated by the
    type's options model, as a dict (the keys given, defaults filled in)."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    type: str
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    # Its `pii`/`pii_drop` with its tenant's key (domain/privacy.py); None: nothing personal.
    privacy: PrivacyRules | None = None

    @field_validator("tenant", "name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} must match {NAME_PATTERN.pattern}")
        return value

    @property
    def partition_key(self) -> str:
        """The Dagster partition key of this instance within its source type."""
        return f"{self.tenant}.{self.name}"

    @property
    def run_tags(self) -> dict[str, str]:
        """Tags of every run of this instance (`instance_run_tags`)."""
        return instance_run_tags(self.type, self.partition_key)

    @property
    def pipeline_name(self) -> str:
        """dlt pipeline name: one per instance, so incremental state never mixes."""
        return f"{self.type}__{self.tenant}__{self.name}".replace("-", "_")


def instance_run_tags(source_type: str, partition_key: str) -> dict[str, str]:
    """The tags of every run of one source instance (`tenant.name` of a source type): the UI and
    the read API filter by them, and the run queue (dagster.yaml) allows one run at a time per
    `ingest/source_instance` and a share of the run slots per `ingest/tenant`. `ingest/instance`
    (`<type>.<tenant>.<name>`) is the older spelling of `ingest/source_instance`
    (`<type>:<tenant>.<name>`), kept for what filters by it."""
    tenant, name = split_partition_key(partition_key)
    return {
        TENANT_TAG: tenant,
        SOURCE_TAG: name,
        SOURCE_TYPE_TAG: source_type,
        INSTANCE_TAG: f"{source_type}.{partition_key}",
        SOURCE_INSTANCE_TAG: f"{source_type}:{partition_key}",
    }


def split_partition_key(partition_key: str) -> tuple[str, str]:
    tenant, _, name = partition_key.partition(".")
    return tenant, name


def resolve_secret(env_var: str) -> str:
    value = os.environ.get(env_var, "")
    if not value:
        raise MissingSecretError(f"secret environment variable {env_var} is not set or empty")
    return value


def tenant_names(path: Path) -> set[str]:
    """Every tenant the tenants file names (with or without sources)."""
    return set(_tenants(path))


def _tenants(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TenantsFileError(f"tenants file {path} does not exist (set INGEST_TENANTS_FILE)")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TenantsFileError(f"tenants file {path} is not valid YAML: {exc}") from exc
    tenants = document.get("tenants") or {}
    if not isinstance(tenants, dict):
        raise TenantsFileError(f"tenants file {path}: 'tenants' must be a mapping")
    return tenants


@dataclass(frozen=True)
class InvalidInstance:
    """An instance left out of the tenants file's instances, and why (no setting's value)."""

    tenant: str
    type: str
    name: str
    reason: str

    @property
    def partition_key(self) -> str:
        return f"{self.tenant}.{self.name}"

    def __str__(self) -> str:
        return f"tenant {self.tenant}: {self.type} source {self.name}: {self.reason}"


@dataclass(frozen=True)
class TenantsSources:
    """What the tenants file configures: the valid instances, and the ones left out."""

    instances: list[SourceInstance] = field(default_factory=list)
    invalid: list[InvalidInstance] = field(default_factory=list)


def read_source_instances(path: Path) -> TenantsSources:
    """Every source instance in the tenants file: the valid ones and, apart, each one whose type
    or settings are invalid. Raises TenantsFileError for a fault of the file itself."""
    sources = TenantsSources()
    for tenant, tenant_config in _tenants(path).items():
        privacy = _privacy(tenant_config)
        for raw in (tenant_config or {}).get("sources") or []:
            parsed = _parse_instance(path, str(tenant), raw, privacy)
            target = sources.invalid if isinstance(parsed, InvalidInstance) else sources.instances
            target.append(parsed)
    _reject_duplicates(path, [*sources.instances, *sources.invalid])
    return sources


def load_source_instances(path: Path) -> list[SourceInstance]:
    """The valid source instances of the tenants file (`read_source_instances` has the others).
    Raises TenantsFileError."""
    return read_source_instances(path).instances


def _privacy(tenant_config: Any) -> TenantPrivacy | str:
    """The tenant's privacy settings, or why they are invalid (for its instances that need them)."""
    given = tenant_config if isinstance(tenant_config, dict) else {}
    try:
        return TenantPrivacy.model_validate({k: given[k] for k in PRIVACY_KEYS if k in given})
    except ValidationError as exc:
        return f"invalid privacy settings of the tenant: {describe_errors(exc)}"


def tenant_privacy(path: Path, tenant: str) -> TenantPrivacy:
    """A tenant's privacy settings (its key's env var, pii_keep_raw, its landed kinds' rules).
    TenantsFileError if they are invalid."""
    privacy = _privacy(_tenants(path).get(tenant))
    if isinstance(privacy, str):
        raise TenantsFileError(f"tenants file {path}: tenant {tenant}: {privacy}")
    return privacy


def _parse_instance(
    path: Path, tenant: str, raw: Any, privacy: TenantPrivacy | str
) -> SourceInstance | InvalidInstance:
    if not isinstance(raw, dict) or "type" not in raw or "name" not in raw:
        raise TenantsFileError(
            f"tenants file {path}: tenant {tenant}: each source needs type, name"
        )
    given = {k: v for k, v in raw.items() if k not in ("type", "name")}
    try:
        identity = SourceInstance(tenant=tenant, type=raw["type"], name=raw["name"])
    except ValidationError as exc:
        raise TenantsFileError(f"tenants file {path}: tenant {tenant}: {exc}") from exc
    try:
        options = options_model(identity.type).model_validate(given)
    except UnknownSourceTypeError as exc:
        return InvalidInstance(tenant, identity.type, identity.name, str(exc))
    except ValidationError as exc:
        reason = f"invalid settings: {describe_errors(exc)}"
        return InvalidInstance(tenant, identity.type, identity.name, reason)
    try:
        rules = _instance_rules(options, privacy)
    except ValueError as exc:
        return InvalidInstance(tenant, identity.type, identity.name, str(exc))
    return identity.model_copy(update={"options": options.as_dict(), "privacy": rules})


def _instance_rules(options: Any, privacy: TenantPrivacy | str) -> PrivacyRules | None:
    if not (options.pii or options.pii_drop):
        return None
    if isinstance(privacy, str):
        raise ValueError(privacy)
    return privacy.rules(options.pii or (), options.pii_drop or ())


def describe_errors(exc: ValidationError) -> str:
    """`field: what is wrong` per error, without the input values: a secret written in the file
    by mistake stays out of the message (and so out of logs and tick reasons)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    )


def _reject_duplicates(path: Path, instances: list[SourceInstance | InvalidInstance]) -> None:
    seen: set[tuple[str, str]] = set()
    for instance in instances:
        key = (instance.type, instance.partition_key)
        if key in seen:
            raise TenantsFileError(
                f"tenants file {path}: {instance.type} source {instance.partition_key} twice"
            )
        seen.add(key)


def instances_of_type(path: Path, source_type: str) -> list[SourceInstance]:
    return [i for i in load_source_instances(path) if i.type == source_type]


def find_instance(path: Path, source_type: str, partition_key: str) -> SourceInstance:
    """The instance of a partition; TenantsFileError if it is gone or left out (and why)."""
    sources = read_source_instances(path)
    for instance in sources.instances:
        if instance.type == source_type and instance.partition_key == partition_key:
            return instance
    for invalid in sources.invalid:
        if invalid.type == source_type and invalid.partition_key == partition_key:
            raise TenantsFileError(f"tenants file {path}: {invalid}")
    raise TenantsFileError(f"no {source_type} source {partition_key} in tenants file {path}")


class TenantIntake(BaseModel):
    """One tenant's intake settings: which env vars hold its secrets (names, never values).

    A route whose secret is not named here is not served for the tenant (404).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_env: EnvName | None = None  # bearer token of POST /uploads/{tenant}
    intercom_secret_env: EnvName | None = None  # Intercom app client secret (X-Hub-Signature)
    stripe_secret_env: EnvName | None = None  # Stripe endpoint signing secret (whsec_...)
    # Requests per minute on all of the tenant's routes, also the burst allowed at once.
    rate_limit_per_minute: int = Field(default=DEFAULT_INTAKE_RATE_LIMIT_PER_MINUTE, ge=1)

    @property
    def secret_env_names(self) -> list[str]:
        """Every env var this intake block names, in a stable order."""
        names = (self.token_env, self.intercom_secret_env, self.stripe_secret_env)
        return [name for name in names if name]


def load_intake_configs(path: Path) -> dict[str, TenantIntake]:
    """{tenant: its validated `intake` block} for every tenant that has one.

    Raises TenantsFileError (naming the tenant) for an invalid block.
    """
    return tenant_blocks(path, "intake", TenantIntake)


class TenantApi(BaseModel):
    """One tenant's read API settings (`ingest-pipeline serve-api`): the env var holding the
    bearer token that reads this tenant's data (a name, never the value). A tenant without one
    cannot be read over the API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    read_token_env: EnvName | None = None


def load_api_configs(path: Path) -> dict[str, TenantApi]:
    """{tenant: its validated `api` block} for every tenant that has one.

    Raises TenantsFileError (naming the tenant) for an invalid block.
    """
    return tenant_blocks(path, "api", TenantApi)


def tenant_blocks(path: Path, key: str, model: type[_Block]) -> dict[str, _Block]:
    """{tenant: its `key` block validated by `model`} for every tenant that has one."""
    configs: dict[str, _Block] = {}
    for tenant, tenant_config in _tenants(path).items():
        raw = (tenant_config or {}).get(key) if isinstance(tenant_config, dict) else None
        if raw is None:
            continue
        if not NAME_PATTERN.fullmatch(str(tenant)):
            raise TenantsFileError(
                f"tenants file {path}: tenant {tenant!r} must match {NAME_PATTERN.pattern}"
            )
        if not isinstance(raw, dict):
            raise TenantsFileError(f"tenants file {path}: tenant {tenant}: {key} must be a mapping")
        try:
            configs[str(tenant)] = model.model_validate(raw)
        except ValidationError as exc:
            raise TenantsFileError(
                f"tenants file {path}: tenant {tenant}: {key}: {describe_errors(exc)}"
            ) from None
    return configs


class TenantsFileView(Generic[T]):
    """What `load(path)` makes of the tenants file, loaded again when the file changes (the
    intake's and the read API's view, asked at each request).

    The file is stat-ed at each `get` and parsed again only when its mtime, size or inode
    changed, so onboarding a tenant needs no restart. A file that turns invalid keeps the last
    valid version in force (and logs why), so a typo in an edit takes no tenant down; one that
    was never valid raises TenantsFileError at each `get`.
    """

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        what: str,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self._refresh = refresh  # brings the file up to date first (a tenants file in S3)
        self._load = load
        self._what = what
        self._lock = threading.Lock()
        self._seen: object = object()  # the file version last parsed (valid or not)
        self._value: T | None = None
        self._valid = False
        self._error: TenantsFileError | None = None

    def get(self) -> T:
        if self._refresh is not None:
            self._refresh()
        try:
            stat = self.path.stat()
            stamp: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._seen:
                self._seen = stamp
                self._reload()
            if not self._valid:
                assert self._error is not None
                raise self._error
            return self._value  # type: ignore[return-value]

    def _reload(self) -> None:
        try:
            self._value, self._valid, self._error = self._load(self.path), True, None
        except TenantsFileError as exc:
            kept = "keeping the last valid one" if self._valid else f"no {self._what}"
            log.error("tenants file unusable (%s): %s", kept, exc)
            self._error = exc
