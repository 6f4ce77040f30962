"""Process-wide settings, read from `INGEST_*` environment variables (pydantic-settings).

Only names of things live here; secret values are never settings: the tenants file names the
environment variable that holds each secret, and it is read at the moment it is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_pipeline.domain.tenants_url import is_tenants_url, tenants_copy_path
from ingest_pipeline.lib.durations import DURATION_PATTERN

DEFAULT_DATA_DIR = Path(".data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=None, extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = DEFAULT_DATA_DIR
    # `duckdb:///path/to/file.duckdb` or `postgresql://user:password@host:port/db`.
    # Empty means the embedded default: a DuckDB file under the data dir.
    warehouse_url: str = ""
    # A path, or an `s3://bucket/key` URL (through s3_endpoint_url): every machine then reads
    # the same object, through a local copy under the data dir that is looked at again at most
    # every `tenants_refresh_seconds` (domain/tenants_url.py); `tenants_file` is that copy.
    tenants_file: Path = Field(default=Path("tenants.yaml"))
    tenants_file_url: str = Field(default="", exclude=True)  # set from INGEST_TENANTS_FILE
    tenants_refresh_seconds: float = Field(default=30.0, ge=0)
    s3_endpoint_url: str = ""
    landing_bucket: str = "landing"
    # Steps' logs in this S3 bucket (through s3_endpoint_url), not on the disk of the machine
    # that ran them: Dagster's instance gets S3ComputeLogManager (cli/dagster_home.py).
    compute_logs_bucket: str = ""
    # A landing sensor tick takes at most this many new objects and launches one run per batch
    # of at most `landing_objects_per_run`: a backlog of 10,000 is 5 ticks of 4 runs each.
    landing_objects_per_tick: int = Field(default=2000, ge=1)
    landing_objects_per_run: int = Field(default=500, ge=1)
    # How often a landing sensor looks for uploads to take again (Queued after a transient
    # fault, or left Processing by a run that died); 0 means every tick.
    landing_retry_check_seconds: float = Field(default=120.0, ge=0)
    dagster_pg_url: str = ""
    # DuckDB is single-writer: a process that finds the file locked waits this long for it
    # (with a message naming the holder), then gives up with a one-line error.
    duckdb_lock_wait_seconds: float = Field(default=120.0, gt=0)
    # Threads of DuckDB in a process of the pipeline (its steps' connections and dlt's); 0: DuckDB's
    # own, one per core. Each thread of a join or group-by holds its own share in the process:
    # with 1, a 3M-row csv run peaks 100 MB lower and no slower on 2 cores (issue 14).
    duckdb_threads: int = Field(default=1, ge=0)
    # An ingest step that failed on a transient fault (lib/step_retries.py) runs again up to
    # this many times, after this delay, doubling per attempt (read when the definitions load).
    step_retries: int = Field(default=2, ge=0)
    step_retry_delay_seconds: float = Field(default=30.0, ge=0)
    # dbt's target folder (its artifacts and logs, a folder per invocation; the manifest when it
    # is parsed at run time). Empty: `dbt_metrics/target` in a checkout, `<data dir>/dbt/target`
    # for an installed package (defs/metrics/project.py), which never writes into its own files.
    dbt_target_dir: Path | None = None
    # First day of the metrics' daily partitions (UTC).
    metrics_start_date: str = "2025-01-01"
    # How often the metrics of the days new rows touched (today's above all) are re-built while
    # new rows arrive; read when the definitions load (the freshness sensor's interval).
    metrics_refresh_minutes: float = Field(default=10.0, gt=0)
    # Alerts (defs/alerts): one JSON POST per alert, Slack's incoming-webhook format. The URL of
    # a Slack webhook is its secret: a SecretStr, never shown or logged. Empty: no alerts sent.
    alert_webhook_url: SecretStr = SecretStr("")
    # A repeat of the same alert within this many minutes is folded into the first.
    alert_quiet_minutes: float = Field(default=60.0, ge=0)
    # Alerts by e-mail too (or instead): one message per alert to these recipients
    # (comma-separated; empty: no e-mail), through this SMTP server. STARTTLS when
    # `alert_email_starttls` (port 587's usual submission), plain otherwise (a relay on port 25);
    # a login only when a user is given. The password is a SecretStr, never shown or logged.
    alert_email_to: str = ""
    alert_email_from: str = "ingest-pipeline@localhost"
    alert_email_smtp_host: str = ""
    alert_email_smtp_port: int = Field(default=587, ge=1, le=65535)
    alert_email_smtp_user: str = ""
    alert_email_smtp_password: SecretStr = SecretStr("")
    alert_email_starttls: bool = True
    # Retention windows (durations `12h`, `7d`), each tenant's unless its `retention:` block
    # says otherwise; applied daily by `retention_daily` (domain/retention.py).
    retention_raw: str = Field(default="90d", pattern=DURATION_PATTERN)
    retention_rejects: str = Field(default="30d", pattern=DURATION_PATTERN)
    retention_audit: str = Field(default="30d", pattern=DURATION_PATTERN)
    retention_events: str = Field(default="365d", pattern=DURATION_PATTERN)
    retention_log_records: str = Field(default="30d", pattern=DURATION_PATTERN)
    # Where an alert's link points: the Dagster UI as its readers reach it.
    ui_base_url: str = "http://127.0.0.1:3000"
    # The intake service (`serve-intake`) with debug on: tracebacks in error answers, debug
    # logging. Refused in production.
    intake_debug: bool = False
    # How long the intake waits for a request's whole body; then 408 and the connection closed.
    intake_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # A line longer than this (bytes, without its line ending: CSV sources, landed logs and
    # NDJSON) or an element of a landed JSON array longer than this is a reject of its own; the
    # readers never hold more of it in memory.
    max_line_bytes: int = Field(default=1_048_576, ge=1)
    # An RSS/Atom feed is parsed whole (feedparser has no streaming API): one larger than this
    # (bytes, decompressed) fails its instance, naming the feed and the limit, before more of
    # it is read.
    feed_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # The read API (`serve-api`). DuckDB: how long a request waits for the file while a
    # pipeline process writes it, then 503 with Retry-After. PostgreSQL: the connection pool's
    # size (requests beyond it wait for a connection) and each statement's time limit.
    api_duckdb_wait_seconds: float = Field(default=2.0, gt=0)
    api_pool_size: int = Field(default=8, ge=1, le=100)
    api_statement_timeout_seconds: float = Field(default=5.0, gt=0)
    # Where the steps of a run execute (lib/executors.py): `in_process` (the run's own process:
    # one machine's best, the default), `multiprocess` (a process per step), or `celery`
    # (dagster-celery workers fed by the broker, started with `ingest-pipeline worker`; the
    # warehouse and Dagster's instance on PostgreSQL, so every worker reaches them).
    executor: Literal["in_process", "multiprocess", "celery"] = "in_process"
    celery_broker_url: str = ""  # e.g. redis://127.0.0.1:6379/0; required with `celery`
    celery_backend_url: str = ""  # where step results go; empty: the broker
    # Log lines of every command: `text` or `json` (one object per line), and the level of the
    # project's own loggers (other libraries log warnings and errors).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _tenants_file_in_s3(cls, data: Any) -> Any:
        # INGEST_TENANTS_FILE=s3://bucket/key: the URL kept apart, the path its local copy.
        if not isinstance(data, dict) or not is_tenants_url(data.get("tenants_file")):
            return data
        url = data["tenants_file"]
        data_dir = Path(data.get("data_dir") or DEFAULT_DATA_DIR)
        return {**data, "tenants_file_url": url, "tenants_file": tenants_copy_path(data_dir, url)}

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("dbt_target_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # `INGEST_DBT_TARGET_DIR=` as in .env.example

    @model_validator(mode="after")
    def _email_alerts_need_a_server(self) -> Settings:
        # Recipients without a server would drop every alert in silence: refused at start-up.
        recipients = self.alert_email_recipients
        if recipients and not self.alert_email_smtp_host:
            raise ValueError(
                "INGEST_ALERT_EMAIL_TO is set: INGEST_ALERT_EMAIL_SMTP_HOST must be too"
            )
        if not_addresses := [r for r in recipients if "@" not in r]:
            raise ValueError(f"INGEST_ALERT_EMAIL_TO: not e-mail addresses: {not_addresses}")
        return self

    @model_validator(mode="after")
    def _celery_needs_what_every_worker_reaches(self) -> Settings:
        if self.executor != "celery":
            return self
        problems = []
        if not self.celery_broker_url:
            problems.append("INGEST_CELERY_BROKER_URL must name the broker")
        if not self.resolved_warehouse_url.startswith("postgresql"):
            problems.append(
                "INGEST_WAREHOUSE_URL must name a PostgreSQL warehouse (a DuckDB file "
                "is one machine's)"
            )
        if not self.dagster_pg_url:
            problems.append("INGEST_DAGSTER_PG_URL must be set (Dagster's instance on PostgreSQL)")
        if problems:
            raise ValueError("INGEST_EXECUTOR=celery refuses: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production_defaults(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if not self.warehouse_url.startswith("postgresql"):
            problems.append("INGEST_WAREHOUSE_URL must name a PostgreSQL warehouse")
        if not self.tenants_file_url and not self.tenants_file.is_file():
            problems.append(f"INGEST_TENANTS_FILE ({self.tenants_file}) does not exist")
        if not self.dagster_pg_url:
            problems.append("INGEST_DAGSTER_PG_URL must be set (Dagster instance storage)")
        if problems:
            raise ValueError("production mode refuses unsafe defaults: " + "; ".join(problems))
        return self

    @property
    def alert_email_recipients(self) -> list[str]:
        return [part.strip() for part in self.alert_email_to.split(",") if part.strip()]

    @property
    def resolved_warehouse_url(self) -> str:
        if self.warehouse_url:
            return self.warehouse_url
        return f"duckdb:///{(self.data_dir / 'warehouse.duckdb').resolve()}"


def get_settings() -> Settings:
    """Read settings now (not at import), so a changed environment is seen by the next run; a
    tenants file in S3 is brought up to date (at most every INGEST_TENANTS_REFRESH_SECONDS)."""
    settings = Settings()
    refresh_tenants_file(settings)
    return settings


def refresh_tenants_file(settings: Settings) -> None:
    """The local copy of a tenants file given as an s3:// URL brought up to date (a no-op for a
    path): domain/tenants_url.py."""
    if settings.tenants_file_url:
        from ingest_pipeline.domain.tenants_url import refresh_tenants_copy

        refresh_tenants_copy(
            settings.tenants_file_url,
            settings.tenants_file,
            settings.s3_endpoint_url,
            settings.tenants_refresh_seconds,
        )
