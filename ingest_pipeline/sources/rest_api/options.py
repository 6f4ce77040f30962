"""The settings of a `rest_api` instance: dlt's rest_api configuration, plus our own keys.

`client` and each resource's own keys (`endpoint`, `write_disposition`, `processing_steps`, ...)
are dlt's, passed through: dlt validates them against its own config types when the source is
built (a run of the instance), so they stay dicts here and only what dlt does not check is typed:
every `*_env` key in `client.auth` names an environment variable, and a resource's `name`,
`mapping`, `max_pages` and `primary_key` are ours (`source.py` reads them). The guards' default
page limit lives here, and `guards.py` reads it from here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest_pipeline.lib.source_types import HOURLY, SourceOptions, check_env_name

DEFAULT_MAX_PAGES = 10_000


class Resource(BaseModel):
    # Extra keys allowed: they are dlt's resource configuration, which dlt itself validates.
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    mapping: dict[str, str] = Field(default_factory=dict)  # item field: path in the record
    max_pages: int = Field(default=DEFAULT_MAX_PAGES, ge=1)
    primary_key: str | list[str] | None = None


class Options(SourceOptions):
    schedule: str = HOURLY  # the type's default cron
    client: dict[str, Any]  # dlt's client config: base_url, auth (secrets by *_env), paginator
    resources: list[Resource] = Field(min_length=1)

    @field_validator("client")
    @classmethod
    def _auth_secrets_by_name(cls, client: dict[str, Any]) -> dict[str, Any]:
        if not client.get("base_url"):
            raise ValueError("needs a base_url")
        auth = client.get("auth")
        for key, value in (auth or {}).items() if isinstance(auth, dict) else ():
            if key.endswith("_env"):
                try:
                    check_env_name(str(value))
                except ValueError as exc:
                    raise ValueError(f"auth.{key} {exc}") from None
        return client

    @field_validator("resources")
    @classmethod
    def _unique_names(cls, resources: list[Resource]) -> list[Resource]:
        names = [r.name for r in resources]
        if len(set(names)) != len(names):
            raise ValueError("resource names must be unique")
        return resources
