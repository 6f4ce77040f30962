"""A configurable REST API: the instance's `client`/`resources` are dlt's rest_api configuration.

Auth, paginators, incremental cursors and retries are dlt's. We only resolve secrets named by
`*_env` keys at run time, drop our own resource keys (`mapping`, `max_pages`), wrap each
resource's paginator in the guards dlt lacks (`guards.py`: a pagination loop, a page limit, a
page that is not JSON or lacks its data selector each fail the instance with a clear message),
and put each instance's resources in tables of their own (`<tenant>__<instance>__<resource>`)
with the instance columns.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source
from dlt.sources.rest_api.config_setup import create_paginator

from ingest_pipeline.domain.tenants import SourceInstance, resolve_secret
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.sources.dlt_pipelines import instance_columns, instance_key
from ingest_pipeline.sources.rest_api.guards import DEFAULT_MAX_PAGES, GuardedPaginator

RESOURCE_COLUMN = "_resource"
# Our keys inside a resource's configuration, not dlt's.
OWN_RESOURCE_KEYS = ("mapping", "max_pages")

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "Records of configured REST API resources, one table per tenant, instance and resource."
)


def raw_table_name(instance: SourceInstance, resource: str) -> str:
    return f"{instance.tenant}__{instance.name}__{resource}".replace("-", "_")


@dlt.source(name="rest_api")
def rest_api_instance_source(instance: SourceInstance | None = None) -> Any:
    if instance is None:
        return records_placeholder()
    source = rest_api_source(dlt_rest_api_config(instance), name=instance.pipeline_name)
    resources = []
    for config in instance.options["resources"]:
        resource = source.resources[config["name"]]
        primary_key = config.get("primary_key")
        keys = [primary_key] if isinstance(primary_key, str) else list(primary_key or [])
        resource.apply_hints(
            table_name=raw_table_name(instance, config["name"]),
            primary_key=instance_key(*keys) if keys else None,
            write_disposition=config.get("write_disposition", "merge" if keys else "append"),
        )
        resource.add_map(instance_columns(instance))
        resource.add_map(_tag_resource(config["name"]))
        resources.append(resource)
    return resources


@dlt.resource(name="records")
def records_placeholder() -> Iterator[dict[str, Any]]:
    yield from ()


def dlt_rest_api_config(instance: SourceInstance) -> dict[str, Any]:
    """The instance's rest_api config as dlt wants it: secrets resolved, our keys removed."""
    options = copy.deepcopy(instance.options)
    client = options["client"]
    if "auth" in client:
        client["auth"] = _resolve_secrets(client["auth"])
    resources = [_guarded(resource, client.get("paginator")) for resource in options["resources"]]
    return {"client": client, "resources": resources}


def _guarded(resource: dict[str, Any], client_paginator: Any) -> dict[str, Any]:
    """The resource without our keys, its paginator (as dlt would pick it) wrapped in guards."""
    config = {k: v for k, v in resource.items() if k not in OWN_RESOURCE_KEYS}
    endpoint = config.get("endpoint", {})
    endpoint = {"path": endpoint} if isinstance(endpoint, str) else dict(endpoint)
    # dlt's precedence: the endpoint's paginator, else the client's; None means detect.
    inner = create_paginator(endpoint.get("paginator", client_paginator))
    endpoint["paginator"] = GuardedPaginator(
        inner,
        resource=config["name"],
        data_selector=endpoint.get("data_selector"),
        max_pages=resource.get("max_pages", DEFAULT_MAX_PAGES),
    )
    return {**config, "endpoint": endpoint}


def _resolve_secrets(auth: dict[str, Any]) -> dict[str, Any]:
    """`token_env: NAME` becomes `token: <value of $NAME>` (and so on for any `*_env` key)."""
    resolved = {}
    for key, value in auth.items():
        if key.endswith("_env"):
            resolved[key.removesuffix("_env")] = resolve_secret(value)
        else:
            resolved[key] = value
    return resolved


def _tag_resource(name: str):
    def tag(item: dict[str, Any]) -> dict[str, Any]:
        return {**item, RESOURCE_COLUMN: name}

    return tag


RAW = RawLayer("records", rest_api_instance_source, RAW_DESCRIPTION)
