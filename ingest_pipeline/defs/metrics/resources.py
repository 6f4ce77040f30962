import dagster as dg
from dagster_dbt import DbtCliResource

from ingest_pipeline.defs.metrics.project import DBT_EXECUTABLE, dbt_project


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)}
    )
