"""The executor of every job of the code location, from INGEST_EXECUTOR (settings).

Rules kept here:
- `in_process` (the default): a run's steps in the run's own process; a step in a process of
  its own re-imports the code location (3-8 s here), more than most steps take.
- `multiprocess`: Dagster's multiprocess executor, a process per step.
- `celery`: dagster-celery's executor, configured in code (broker and backend from
  INGEST_CELERY_BROKER_URL / INGEST_CELERY_BACKEND_URL), so every run uses it, whoever launched
  it (a schedule or sensor's run has an empty run config). Tasks are acknowledged late and a
  worker takes one at a time: a step of a worker lost mid-way is delivered again, and an idle
  worker never waits behind a busy one (test_fast_executors checks both apps, the runs' and the
  worker's). How soon a lost worker's step comes back is the broker's: RabbitMQ gives it to
  another worker as soon as the lost worker's connection closes (a killed process at once, a
  lost machine after the AMQP heartbeat; test_celery kills a whole worker), so it is the broker
  for production (docker-compose.yml); on Redis an unacknowledged step comes back only after
  the visibility timeout (Celery's default, one hour, kept: a step running longer than that
  would be delivered a second time). `ingest-pipeline worker` starts a worker with
  the same configuration (`celery_config`). Settings refuse `celery` without PostgreSQL for the
  warehouse and Dagster's instance.
- Every job takes it, the landing, normalize and retention jobs too: with `celery` an upload
  is landed by a worker, not by the process the daemon launched the run in.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ingest_pipeline.settings import Settings

BROKER_ENV = "INGEST_CELERY_BROKER_URL"
# Celery's settings for the executor and its workers (`config_source`).
CELERY_SETTINGS = {
    "task_acks_late": True,  # acknowledged when done: a lost worker's step is redelivered
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,  # one task at a time: none waits behind a busy worker
    # The worker's stdout and stderr stay real files: Dagster captures a step's logs by
    # redirecting their file descriptors (then uploads them: INGEST_COMPUTE_LOGS_BUCKET); Celery's
    # default replaces them with a logger without one, and every step's log was empty.
    "worker_redirect_stdouts": False,
}


def celery_config(settings: Settings, literal: bool = False) -> dict[str, Any]:
    """The dagster-celery executor's config: the broker and backend by their env vars (a URL may
    hold a password: it stays out of run configs and the UI), or with `literal` their values
    (the worker's `-y` file: dagster-celery's worker command takes no env references)."""
    backend_env = "INGEST_CELERY_BACKEND_URL" if settings.celery_backend_url else BROKER_ENV
    return {
        "broker": settings.celery_broker_url if literal else {"env": BROKER_ENV},
        "backend": (settings.celery_backend_url or settings.celery_broker_url)
        if literal
        else {"env": backend_env},
        "config_source": dict(CELERY_SETTINGS),
    }


def run_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The executor INGEST_EXECUTOR names."""
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(settings), name="celery")
    return dg.in_process_executor
