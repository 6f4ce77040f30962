from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.csv.source import csv_source

raw_csv_assets = build_raw_assets(
    "csv",
    csv_source,
    "CSV rows as the files held them (all text), one table and one partition per tenant.instance.",
)
ingest_csv_job = ingest_job("csv", raw_csv_assets)
