"""The `rest_api` source type: any paginated REST API, configured per instance (dlt's rest_api)."""

from __future__ import annotations

import os

from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.catalog_api import CatalogApi, sample_products
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sources.rest_api.mapper import map_rest_api_row
from ingest_pipeline.sources.rest_api.options import Options
from ingest_pipeline.sources.rest_api.source import rest_api_instance_source

RAW_DESCRIPTION = (
    "Records of configured REST API resources, one table per tenant, instance and resource."
)
DEMO_SECRET_ENV = "DEMO_CATALOG_TOKEN"


def demo_sandbox(port: int) -> CatalogApi:
    """The catalog API with a dozen products behind the demo token."""
    return CatalogApi(os.environ[DEMO_SECRET_ENV], sample_products(12), port)


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("records", rest_api_instance_source, RAW_DESCRIPTION),
    NormalizedLayer("items", map_rest_api_row),
    sandbox_part(8081, demo_sandbox, {DEMO_SECRET_ENV: "demo-token"}),
)
