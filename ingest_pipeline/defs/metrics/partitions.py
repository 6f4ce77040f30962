import dagster as dg

from ingest_pipeline.settings import get_settings

# One partition per UTC day; a run may cover a range of them (single-run backfill policy).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().metrics_start_date, timezone="UTC"
)
