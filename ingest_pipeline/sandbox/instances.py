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
