import dagster as dg

from ingest_pipeline.defs.metrics.project import DBT_EXECUTABLE, MetricsDbtCliResource, dbt_project


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "dbt": MetricsDbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)
        }
    )
