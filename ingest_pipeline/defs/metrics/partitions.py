import dagster as dg

from ingest_pipeline.settings import get_settings

# One partition per UTC day, today's included from 00:00 UTC on (end_offset=1: the metrics of the
# day in progress are re-built as its data arrives); a run may cover a range of them (single-run
# backfill policy).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=get_settings().metrics_start_date, timezone="UTC", end_offset=1
)
