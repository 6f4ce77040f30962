import dagster as dg
from dagster_dlt import DagsterDltResource

from ingest_pipeline.lib.resources import WarehouseResource


@dg.definitions
def defs() -> dg.Definitions:
    # Every job runs its steps in the run's own process: a step in a process of its own
    # re-imports the code location (3-8 s here), more than most of our steps take.
    return dg.Definitions(
        resources={"dlt": DagsterDltResource(), "warehouse": WarehouseResource()},
        executor=dg.in_process_executor,
    )
