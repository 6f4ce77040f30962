"""`ingest-pipeline demo`: the whole pipeline on the embedded default, against local sandboxes.

Starts a catalog REST API and a feed server on loopback, writes sample CSVs and a demo tenants
file under the data dir, runs `ingest` for it and prints the summary and how to open the UI.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ingest_pipeline.sandbox.catalog_api import CatalogApi, sample_products
from ingest_pipeline.sandbox.feeds import FeedServer
from ingest_pipeline.sandbox.instances import catalog_api_instance, catalog_csv_instance
from ingest_pipeline.settings import get_settings

DEMO_TOKEN_ENV = "DEMO_CATALOG_TOKEN"
SAMPLE_CSV = (
    "sku;name;link;updated\n"
    "SKU-1;Espresso machine;https://shop.example/sku-1;2026-01-10T09:00:00Z\n"
    "SKU-2;Grinder;https://shop.example/sku-2;2026-01-11\n"
    "SKU-3;Milk jug;not a url;2026-01-12\n"
    ";Nameless;https://shop.example/x;2026-01-13\n"
)


def run_demo() -> int:
    settings = get_settings()
    demo_dir = (settings.data_dir / "demo").resolve()
    landing = demo_dir / "landing" / "acme" / "catalog"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "catalog.csv").write_text(SAMPLE_CSV, encoding="utf-8")

    # The demo's own secret, set for this process only: the tenants file names the variable.
    os.environ.setdefault(DEMO_TOKEN_ENV, "demo-token")
    api = CatalogApi(os.environ[DEMO_TOKEN_ENV], sample_products(12))
    feeds = FeedServer()
    api.server.start()
    feeds.server.start()
    try:
        tenants_file = write_demo_tenants(demo_dir, api.server.url, feeds.server.url, landing)
        os.environ["INGEST_TENANTS_FILE"] = str(tenants_file)
        print(f"demo tenants file: {tenants_file}")
        print(f"warehouse: {settings.resolved_warehouse_url}\n")
        from ingest_pipeline.cli import cmd_ingest

        status = cmd_ingest()
    finally:
        api.server.stop()
        feeds.server.stop()
    print(
        "\nExplore it in the Dagster UI:  make dev   (then open http://127.0.0.1:3000)\n"
        "The demo's sandboxes stop with the demo: materializing its sources from the UI\n"
        "needs them running (`ingest-pipeline demo` again)."
    )
    # The broken feed is there on purpose: show one instance failing alone, yet exit 0.
    return 0 if status in (0, 1) else status


def write_demo_tenants(demo_dir: Path, api_url: str, feeds_url: str, landing: Path) -> Path:
    tenants = {
        "tenants": {
            "acme": {
                "sources": [
                    catalog_api_instance(api_url, DEMO_TOKEN_ENV),
                    catalog_csv_instance(landing),
                    {"type": "rss", "name": "eng-blog", "url": f"{feeds_url}/feed.xml"},
                ]
            },
            "globex": {
                "sources": [
                    {"type": "rss", "name": "news", "url": f"{feeds_url}/rdf.xml"},
                    {"type": "rss", "name": "releases", "url": f"{feeds_url}/atom.xml"},
                    {"type": "rss", "name": "dead-feed", "url": f"{feeds_url}/broken.xml"},
                ]
            },
        }
    }
    path = demo_dir / "tenants.yaml"
    path.write_text(yaml.safe_dump(tenants, sort_keys=False), encoding="utf-8")
    return path
