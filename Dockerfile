FROM python:3.11-slim
WORKDIR /opt/ingest
COPY pyproject.toml README.md ./
COPY ingest_pipeline ./ingest_pipeline
COPY dbt_metrics ./dbt_metrics
COPY dagster.yaml workspace.yaml ./
RUN pip install --no-cache-dir .
