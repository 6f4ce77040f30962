import dagster as dg
from dagster_dlt import DagsterDltResource

from ingest_pipeline.lib.resources import WarehouseResource


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"dlt": DagsterDltResource(), "warehouse": WarehouseResource()})
