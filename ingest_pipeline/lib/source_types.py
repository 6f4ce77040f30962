"""The registry of source types: it collects, it does not list.

A source type is one package `ingest_pipeline/sources/<type>/`, and nothing outside that package
names it. Each piece of its declaration stands beside the code it describes:

- `options.py`: `class Options(SourceOptions)`, every setting an instance of the type reads from
  the tenants file, `schedule` too: its default is the type's default cron. It imports nothing
  heavier than pydantic, because the tenants file is validated with it (`option_models()`) by
  code that the source itself imports;
- `source.py` ends with `RAW = RawLayer(resource, dlt source, description)`, its raw layer;
- `mapper.py` ends with `NORMALIZED = NormalizedLayer(entity, mapper)`, its normalized layer;
- its demo part, `DEMO`, is declared by the module that builds it: a platform's sandbox module
  (`sandbox/<platform>.py`, with `sandbox_part` of sandbox/demo_world.py), or for files
  whatever writes them (the csv type's `sandbox/catalog_csv.py`);
- `declaration.py` only assembles them: `SOURCE_TYPE = SourceDeclaration(Options, RAW,
  NORMALIZED, DEMO)`, the type's one declaration. It may import anything of the package.

The type's name is its folder's name, stated nowhere else: asset keys, job, partitions, schedule
and the `type:` of the tenants file all follow from it.

This module finds the packages under `ingest_pipeline.sources` with `pkgutil` over the package's
own path (an installed wheel as well as a checkout) and imports `options` or `declaration` of
each only when asked, so importing it costs nothing and closes no import circle (the modules
that declare the pieces import it). A declaration whose options model is not its package's
`options.Options` is an error at discovery. The raw assets, ingest jobs, schedules, partitions
sync, normalized mappers and the demo world all iterate `SOURCE_TYPES`.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ingest_pipeline.lib.durations import DURATION_PATTERN

if TYPE_CHECKING:
    import contextlib

SOURCES_PACKAGE = "ingest_pipeline.sources"
HOURLY = "0 * * * *"
EVERY_15_MINUTES = "*/15 * * * *"
# Checked with fullmatch: a secret is named by its environment variable, never written here.
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_name(value: str) -> str:
    # The message never holds the value: a secret pasted here by mistake stays out of logs.
    if not ENV_NAME_PATTERN.fullmatch(value):
        raise ValueError(f"must name an environment variable ({ENV_NAME_PATTERN.pattern})")
    return value


EnvName = Annotated[str, AfterValidator(check_env_name)]
PiiField = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class SourceOptions(BaseModel):
    """The settings every instance may have; a type's `Options` adds its own. Unknown keys are
    errors (a typo never falls back to a default in silence); `*_env` fields are `EnvName`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Cron (UTC) of the instance's ingest runs; a type's Options sets its default cron here.
    schedule: str = HOURLY
    # Runs failed on an authentication error in a row after which the instance is paused
    # (skipped by its schedule until `ingest-pipeline resume`); 0 never pauses it.
    pause_after_auth_failures: int = Field(default=3, ge=0)
    # How old its last successful load may be (`2h`, `1d`) before it is stale; by default
    # twice the interval of its schedule (defs/tenants/freshness.py).
    freshness: str | None = Field(default=None, pattern=DURATION_PATTERN)
    # Fields of the instance's normalized entity to pseudonymize, and to drop, before the
    # normalized layer (domain/privacy.py; the key is the tenant's `pii_key_env`).
    pii: list[PiiField] | None = None
    pii_drop: list[PiiField] | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError("must be a cron expression of five fields")
        return value

    def as_dict(self) -> dict[str, Any]:
        """The options as `SourceInstance.options` holds them: the keys the file gave, and the
        defaults of the others; an optional setting left unset is absent, not None."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class DemoPart:
    """A source type's part of the demo world (sandbox/demo_world.py), declared as `DEMO` by
    the module that builds it: a platform's sandbox module (`sandbox/<platform>.py`, with
    `sandbox_part`), or for the csv type `sandbox/catalog_csv.py`, which writes its file.

    `tenants.example.yaml` names the part by `example_address` (a sandbox's default URL, a
    folder); `start` brings the part up, stopped when `running` closes, and returns the address
    that replaces the example's. `port` is `default_port`, or 0 (any free port) when that is
    taken or the caller wants free ports. `secrets` are the demo values of the env vars its
    instances name; they are in the environment before `start` runs.
    """

    example_address: str
    start: Callable[[contextlib.ExitStack, Path, int], str]
    default_port: int = 0
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawLayer:
    """The type's raw asset `raw/<type>/<resource>`, loaded by its dlt source (called with no
    instance, the source describes the asset at definition time). Declared as `RAW` at the end
    of `sources/<type>/source.py`, beside the dlt source."""

    resource: str
    dlt_source: Callable[..., Any]
    description: str


@dataclass(frozen=True)
class NormalizedLayer:
    """The entity `normalized/<entity>` the type's raw rows become, and how: `mapper(row,
    instance)` for items and feedback; for payments the function the payments normalizer
    applies to each event (domain.payments). Declared as `NORMALIZED` at the end of
    `sources/<type>/mapper.py`, beside the mapper (Stripe's names the rule of domain.payments)."""

    entity: str
    mapper: Callable[..., Any]
    # The mapper for a batch of raw rows as Arrow (sources.raw_rows.BatchMapper): with it, the
    # type's rows are validated in bulk (domain.bulk_validation), the record path kept for what
    # the bulk checks cannot settle.
    batch_mapper: Callable[..., Any] | None = None


@dataclass(frozen=True)
class SourceDeclaration:
    """What `sources/<name>/declaration.py` declares as `SOURCE_TYPE`: the pieces declared
    beside their code, assembled (`SourceDeclaration(Options, RAW, NORMALIZED, DEMO)`)."""

    options: type[SourceOptions]
    raw: RawLayer
    normalized: NormalizedLayer
    demo: DemoPart | None = None


@dataclass(frozen=True)
class SourceType:
    """A registered source type: its package's name and declaration (`declared`), with the
    names the rest of the platform reads."""

    name: str
    declared: SourceDeclaration

    @property
    def options(self) -> type[SourceOptions]:
        return self.declared.options

    @property
    def default_cron(self) -> str:
        return self.options.model_fields["schedule"].default

    @property
    def raw_resource(self) -> str:
        return self.declared.raw.resource

    @property
    def entity(self) -> str:
        return self.declared.normalized.entity

    @property
    def mapper(self) -> Callable[..., Any]:
        return self.declared.normalized.mapper

    @property
    def batch_mapper(self) -> Callable[..., Any] | None:
        return self.declared.normalized.batch_mapper

    @property
    def job_name(self) -> str:
        return f"ingest_{self.name}"

    @property
    def partitions_name(self) -> str:
        return f"{self.name}_instances"


class UnknownSourceTypeError(KeyError):
    """A type no package under ingest_pipeline/sources declares; the message lists the known."""

    def __str__(self) -> str:
        return str(self.args[0])


def type_names() -> list[str]:
    """Every package under ingest_pipeline/sources, sorted: the registered type names."""
    package = importlib.import_module(SOURCES_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg)


@cache
def option_models() -> dict[str, type[SourceOptions]]:
    """{type: its options model}, importing only each package's light `options` module."""
    return {name: _attribute(name, "options", "Options") for name in type_names()}


def options_model(source_type: str) -> type[SourceOptions]:
    models = option_models()
    if source_type not in models:
        raise UnknownSourceTypeError(
            f"unknown source type {source_type!r}; known types: {', '.join(models)}"
        )
    return models[source_type]


@cache
def _declarations() -> dict[str, SourceType]:
    found: dict[str, SourceType] = {}
    for name in type_names():
        declared = _attribute(name, "declaration", "SOURCE_TYPE")
        if declared.options is not option_models()[name]:
            raise TypeError(
                f"{SOURCES_PACKAGE}.{name}.declaration: SOURCE_TYPE must take its options from "
                f"{SOURCES_PACKAGE}.{name}.options.Options"
            )
        found[name] = SourceType(name, declared)
    return found


def _attribute(package: str, module: str, attribute: str) -> Any:
    return getattr(importlib.import_module(f"{SOURCES_PACKAGE}.{package}.{module}"), attribute)


class _Registry(Mapping[str, SourceType]):
    """A read-only {name: declaration}, discovered at first use (never at import)."""

    def __getitem__(self, name: str) -> SourceType:
        declarations = _declarations()
        if name not in declarations:
            raise UnknownSourceTypeError(
                f"unknown source type {name!r}; known types: {', '.join(declarations)}"
            )
        return declarations[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_declarations())

    def __len__(self) -> int:
        return len(_declarations())


SOURCE_TYPES: Mapping[str, SourceType] = _Registry()


def types_of_entity(entity: str) -> list[SourceType]:
    return [t for t in SOURCE_TYPES.values() if t.entity == entity]
