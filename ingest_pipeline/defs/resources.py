import dagster as dg
from dagster_dlt import DagsterDltResource

from ingest_pipeline.lib.executors import run_executor
from ingest_pipeline.lib.resources import WarehouseResource
from ingest_pipeline.settings import get_settings


@dg.definitions
def defs() -> dg.Definitions:
    # The executor of every job that does not set its own: INGEST_EXECUTOR (lib/executors.py).
    return dg.Definitions(
        resources={"dlt": DagsterDltResource(), "warehouse": WarehouseResource()},
        executor=run_executor(get_settings()),
    )
