"""A product catalog as a CSV file in a local folder: the `csv` type's part of the demo world.

Not a server: `start_demo` writes the file (two of its rows bad: a URL that is not one, no sku)
into the demo's own folder, and that folder replaces the one tenants.example.yaml names.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ingest_pipeline.lib.source_types import DemoPart

# The folder of the demo's csv instance as tenants.example.yaml names it (repository-relative).
EXAMPLE_FOLDER = ".data/demo/landing/acme/catalog"
SAMPLE_CSV = (
    "sku;name;link;updated\n"
    "SKU-1;Espresso machine;https://shop.example/sku-1;2026-01-10T09:00:00Z\n"
    "SKU-2;Grinder;https://shop.example/sku-2;2026-01-11\n"
    "SKU-3;Milk jug;not a url;2026-01-12\n"
    ";Nameless;https://shop.example/x;2026-01-13\n"
)


def start_demo(running: contextlib.ExitStack, demo_dir: Path, port: int) -> str:
    """A catalog file with two bad rows (a bad URL, no sku) in the demo's own folder."""
    folder = demo_dir / "landing" / "acme" / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.csv").write_text(SAMPLE_CSV, encoding="utf-8")
    return str(folder)


DEMO = DemoPart(EXAMPLE_FOLDER, start_demo)
