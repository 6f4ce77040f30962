"""Tenants-file entries for the sandboxes (shared by the demo, the tests and the benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    """A feedback-platform instance with the settings its type needs (README: per type)."""
    settings = {
        "playstore": {"package_name": f"com.{tenant}.app", "token_env": secret_env},
        "twitter": {"query": f"@{tenant}", "token_env": secret_env},
        "discourse": {"api_key_env": secret_env, "api_username": "system"},
        "intercom": {"token_env": secret_env},
    }[platform]
    return {"type": platform, "name": name, "base_url": base_url, **settings, **extra}


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
