"""One declarative path for the platform sources (Play Store, X, Discourse, Intercom, Stripe).

Each platform module states its API as a function from the source instance to dlt's
`RESTAPIConfig` (`platform_config` adds what they all share), and its `@dlt.source` is
`platform_resource`: that configuration through `dlt.sources.rest_api`. What every platform keeps:

- one raw table, `merge` on the instance key (`_tenant_id`, `_source_instance`, the platform's
  own id), rows as the API sent them, plus whatever the platform's row steps add, plus the
  instance columns (the last processing step);
- row steps are rest_api `processing_steps`; dlt runs the incremental after every processing step
  (its placement affinity puts it last), so a cursor a step derives is there when it is read;
- HTTP goes through `platform_session()`: dlt's retrying session, with `x-rate-limit-reset` read
  as `Retry-After`; 401/403 fail the instance at once;
- a paginator dlt has no type for is registered with `register_paginator` and named by its type;
- without an instance (asset definitions) the source still has its resource, with the same name
  and key hints, and yields nothing: no secret is read, no request is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.paginators import BaseReferencePaginator
from dlt.sources.rest_api import rest_api_resources
from dlt.sources.rest_api.typing import (
    BearerTokenAuthConfig,
    ClientConfig,
    Endpoint,
    EndpointResource,
    JSONResponseCursorPaginatorConfig,
    ProcessingSteps,
    RESTAPIConfig,
)
from requests import Request

from ingest_pipeline.domain.tenants import SourceInstance, resolve_secret
from ingest_pipeline.lib.platform_client import platform_session
from ingest_pipeline.sources.dlt_pipelines import instance_columns, instance_key

PlatformConfig = Callable[[SourceInstance], RESTAPIConfig]


@dataclass(frozen=True)
class RawTable:
    """A platform's raw table: the resource (and table) name and the platform's id column."""

    name: str
    platform_id: str

    def hints(self) -> dict[str, Any]:
        """The resource hints the table has with or without an instance."""
        return {
            "name": self.name,
            "write_disposition": "merge",
            "primary_key": list(instance_key(self.platform_id)),
        }


def next_cursor(
    cursor_path: str, *, param: str | None = None, body_path: str | None = None
) -> JSONResponseCursorPaginatorConfig:
    """dlt's `cursor` paginator: the next page's cursor at `cursor_path` of the answer, sent
    back as the query parameter `param` or at `body_path` of the JSON body."""
    if body_path:
        return {"type": "cursor", "cursor_path": cursor_path, "cursor_body_path": body_path}
    return {"type": "cursor", "cursor_path": cursor_path, "cursor_param": param}


class QueryReferencePaginator(BaseReferencePaginator):
    """A paginator sending the next page's reference as the query parameter `reference_param`;
    a subclass says in `update_state` what the reference is (None: no next page)."""

    reference_param: str

    def update_request(self, request: Request) -> None:
        request.params = {**(request.params or {}), self.reference_param: self._next_reference}


def bearer(token_env: str) -> BearerTokenAuthConfig:
    """Bearer auth with the secret in the env var the instance names (missing: the instance
    fails, alone)."""
    return {"type": "bearer", "token": resolve_secret(token_env)}


def bearer_client(options: dict[str, Any], secret_option: str = "token_env") -> ClientConfig:
    """The API at the instance's `base_url` (its Options default to the platform's), with its
    bearer secret."""
    return {
        "base_url": options["base_url"],
        "auth": bearer(options[secret_option]),
    }


def platform_config(
    instance: SourceInstance,
    table: RawTable,
    client: ClientConfig,
    endpoint: Endpoint,
    steps: Sequence[ProcessingSteps] = (),
) -> RESTAPIConfig:
    """One raw table read from one endpoint: the shared hints, session and instance columns."""
    resource: EndpointResource = {
        **table.hints(),
        "endpoint": endpoint,
        "processing_steps": [*steps, {"map": instance_columns(instance)}],
    }
    return {
        "client": {
            **client,
            "base_url": client["base_url"].rstrip("/") + "/",
            "session": platform_session(),
        },
        "resources": [resource],
    }


def platform_resource(
    table: RawTable, config: PlatformConfig, instance: SourceInstance | None
) -> DltResource:
    """The platform's one resource: read by rest_api for an instance, empty for the spec."""
    if instance is None:
        return dlt.resource((), **table.hints())
    [resource] = rest_api_resources(config(instance))
    return resource
