"""Tenants-file entries for the sandboxes (shared by the demo, the tests and the benchmarks).

A platform's entry is configured like its instance in tenants.example.yaml (`_like_example`),
so the settings of each type are written once, in the example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ingest_pipeline.sandbox.demo_world import EXAMPLE_TENANTS_FILE

ITEM_CSV_MAPPING = {"external_id": "sku", "title": "name", "url": "link", "published_at": "updated"}


def catalog_api_instance(
    base_url: str, token_env: str, name: str = "catalog-api", **resource: Any
) -> dict[str, Any]:
    """A `rest_api` instance reading the sandbox catalog's products, incrementally."""
    return {
        "type": "rest_api",
        "name": name,
        "client": {
            "base_url": f"{base_url}/api/",
            "auth": {"type": "bearer", "token_env": token_env},
        },
        "resources": [
            {
                "name": "products",
                "endpoint": {
                    "path": "products",
                    "data_selector": "data",
                    "paginator": {"type": "json_link", "next_url_path": "links.next"},
                    "incremental": {
                        "cursor_path": "updated_at",
                        "start_param": "updated_since",
                        "initial_value": "2020-01-01T00:00:00Z",
                    },
                },
                "primary_key": "id",
                "mapping": {
                    "external_id": "id",
                    "title": "name",
                    "url": "url",
                    "published_at": "updated_at",
                },
                **resource,
            }
        ],
    }


def catalog_csv_instance(path: Path | str, name: str = "catalog", **options: Any) -> dict[str, Any]:
    """A `csv` instance over `sku,name,link,updated` files in a folder or an s3:// prefix."""
    return {
        "type": "csv",
        "name": name,
        "path": str(path),
        "glob": "*.csv",
        "mapping": ITEM_CSV_MAPPING,
        **options,
    }


def feedback_instance(
    platform: str, tenant: str, base_url: str, secret_env: str, name: str = "main", **extra: Any
) -> dict[str, Any]:
    """An instance of a feedback platform for `tenant`, configured like the demo tenant's in
    tenants.example.yaml (so no list of platforms is kept here): its settings with the demo
    tenant's name replaced by `tenant` (an app package, a search query), its secrets in
    `secret_env`, at `base_url`, on its type's default schedule."""
    return {**_like_example(platform, base_url, secret_env, name, tenant), **extra}


def stripe_instance(
    base_url: str, api_key_env: str, name: str = "payments", **extra: Any
) -> dict[str, Any]:
    """A `stripe` instance reading an account's events (the secret key in `api_key_env`),
    configured like the demo's in tenants.example.yaml."""
    return {**_like_example("stripe", base_url, api_key_env, name), **extra}


def _like_example(
    source_type: str, base_url: str, secret_env: str, name: str, tenant: str | None = None
) -> dict[str, Any]:
    """The first instance of `source_type` in tenants.example.yaml, at `base_url`, named `name`,
    its secrets in `secret_env`, on its type's default schedule; with `tenant`, its tenant's
    name in its settings replaced by `tenant`."""
    example_tenant, example = _example_instance(source_type)
    settings = {
        key: secret_env if key.endswith("_env") else _for_tenant(value, example_tenant, tenant)
        for key, value in example.items()
        if key not in ("type", "name", "schedule", "base_url")
    }
    return {"type": source_type, "name": name, "base_url": base_url, **settings}


def _example_instance(source_type: str) -> tuple[str, dict[str, Any]]:
    document = yaml.safe_load(EXAMPLE_TENANTS_FILE.read_text(encoding="utf-8"))
    return next(
        (tenant, source)
        for tenant, config in document["tenants"].items()
        for source in config.get("sources") or []
        if source["type"] == source_type
    )


def _for_tenant(value: Any, example_tenant: str, tenant: str | None) -> Any:
    if tenant is None or not isinstance(value, str):
        return value
    return value.replace(example_tenant, tenant)
