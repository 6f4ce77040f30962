"""The read API (`ingest-pipeline serve-api`): the normalized tables and the metrics of one
tenant over HTTP, read-only, with its OpenAPI document.

Modules: `config` (each tenant's `api` block and source instances, production refusal),
`auth` (bearer tokens, one 401 for every refusal), `params` (validated query parameters),
`cursor` (opaque keyset cursors), `reader` (read-only warehouse access: DuckDB per request,
a PostgreSQL pool), `queries` (the SQL of each route, rows as JSON values), `runs` (last runs
from Dagster's instance), `schemas` (the response models of the OpenAPI document), `metrics`
(Prometheus), `routes` (the tenant routes), `app` (`create_app`: errors, request ids, the
request log, ops routes), `background` (the service in a thread, for benchmarks).
"""
