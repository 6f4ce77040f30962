"""Tenants-file entries for the sandboxes (shared by the demo, the tests and the benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ingest_pipeline.sandbox.demo_world import EXAMPLE_TENANTS_FILE, FEEDBACK_TENANT

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
    settings = {
        key: secret_env if key.endswith("_env") else _for_tenant(value, tenant)
        for key, value in _demo_instance(platform).items()
        if key not in ("type", "name", "schedule", "base_url")
    }
    return {"type": platform, "name": name, "base_url": base_url, **settings, **extra}


def _demo_instance(source_type: str) -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE_TENANTS_FILE.read_text(encoding="utf-8"))
    sources = document["tenants"][FEEDBACK_TENANT]["sources"]
    return next(source for source in sources if source["type"] == source_type)


def _for_tenant(value: Any, tenant: str) -> Any:
    return value.replace(FEEDBACK_TENANT, tenant) if isinstance(value, str) else value


def stripe_instance(
    base_url: str, api_key_env: str, name: str = "payments", **extra: Any
) -> dict[str, Any]:
    """A `stripe` instance reading an account's events (the secret key in `api_key_env`)."""
    return {
        "type": "stripe",
        "name": name,
        "api_key_env": api_key_env,
        "base_url": base_url,
        **extra,
    }
