"""The landing bucket as a Dagster resource: endpoint and bucket from settings at run time."""

from typing import Any

import dagster as dg

from ingest_pipeline.domain.landing import s3_client
from ingest_pipeline.settings import get_settings


class LandingBucketResource(dg.ConfigurableResource):
    """`INGEST_LANDING_BUCKET` on `INGEST_S3_ENDPOINT_URL` (empty: AWS); credentials from the
    standard AWS variables, never from config, so they never show in the UI."""

    bucket: str = ""

    def get_bucket(self) -> str:
        return self.bucket or get_settings().landing_bucket

    def get_client(self) -> Any:
        return s3_client(get_settings())


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"landing_bucket": LandingBucketResource()})
