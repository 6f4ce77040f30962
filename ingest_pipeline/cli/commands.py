"""The CLI's commands, one function each; `main` in `ingest_pipeline.cli` parses the arguments."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from ingest_pipeline.settings import get_settings

if TYPE_CHECKING:
    from ingest_pipeline.domain.input_fingerprints import Fingerprint
    from ingest_pipeline.domain.tenants import SourceInstance
    from ingest_pipeline.lib.warehouse import Warehouse


def cmd_init() -> int:
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.lib.warehouse import Warehouse

    settings = get_settings()
    warehouse = Warehouse(settings.resolved_warehouse_url)
    for table in init_warehouse(warehouse):
        print(f"ready: {table} ({warehouse.dialect})")
    return 0


def cmd_upload_url(tenant: str, kind: str, filename: str | None, expires: int) -> int:
    """Record the upload as Created and print its URL (stdout: the URL alone, for scripts)."""
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.domain.landing import LandingError, issue_upload_url
    from ingest_pipeline.domain.tenants import TenantsFileError, tenant_names
    from ingest_pipeline.lib.warehouse import Warehouse

    settings = get_settings()
    try:
        if tenant not in tenant_names(settings.tenants_file):
            print(f"error: tenant {tenant!r} is not in the tenants file", file=sys.stderr)
            return 2
        init_warehouse(Warehouse(settings.resolved_warehouse_url))
        upload = issue_upload_url(settings, tenant, kind, filename, expires)
    except (LandingError, TenantsFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(upload.url)
    print(
        f"upload_id={upload.upload_id} key={upload.object_key} "
        f"expires_at={upload.expires_at.isoformat()}",
        file=sys.stderr,
    )
    return 0


def cmd_serve_intake(host: str, port: int, debug: bool = False) -> int:
    """Run the intake service until interrupted (uvicorn, one process)."""
    import uvicorn

    from ingest_pipeline.intake.app import create_app
    from ingest_pipeline.intake.config import IntakeStartupError

    settings = get_settings()
    try:
        app = create_app(settings, debug=debug or None)
    except IntakeStartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="debug" if app.state.intake.debug else "info",
        server_header=False,
    )
    return 0


def cmd_serve_api(host: str, port: int, workers: int = 1) -> int:
    """Run the read API until interrupted (uvicorn; `workers` processes share the port, each
    with its own connection pool). It writes one log line per request itself."""
    import uvicorn

    from ingest_pipeline.api.app import create_app
    from ingest_pipeline.api.config import ApiStartupError
    from ingest_pipeline.cli.dagster_home import ensure_dagster_home

    settings = get_settings()
    if not os.environ.get("DAGSTER_HOME"):  # set: the operator's instance (read-only mounts)
        ensure_dagster_home(settings)  # `stats` reads the runs of the same Dagster instance
    try:
        app = create_app(settings)  # also the check that it may start, before any worker
    except ApiStartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # No uvicorn log config and no access log: its lines go through the project's handler.
    options = {"log_config": None, "access_log": False, "server_header": False}
    if workers > 1:  # each worker process builds its own app from the same environment
        target = "ingest_pipeline.api.app:create_app"
        uvicorn.run(target, factory=True, host=host, port=port, workers=workers, **options)
    else:
        uvicorn.run(app, host=host, port=port, **options)
    return 0


def cmd_resume(tenant: str, instance_name: str) -> int:
    """Lift the auto-pause of a source instance (defs/tenants/pauses.py)."""
    import dagster as dg

    from ingest_pipeline.cli.dagster_home import ensure_dagster_home
    from ingest_pipeline.defs.tenants.pauses import resume

    ensure_dagster_home(get_settings())
    with dg.DagsterInstance.get() as instance:
        lifted = resume(instance, tenant, instance_name)
    if not lifted:
        print(f"{tenant}.{instance_name} is not paused")
        return 0
    print(f"resumed: {', '.join(lifted)} (its schedule asks for runs again)")
    return 0


def cmd_ingest(tenant: str | None = None, source: str | None = None) -> int:
    from ingest_pipeline.domain import input_fingerprints
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.domain.tenants import (
        InvalidInstance,
        TenantsFileError,
        read_source_instances,
    )
    from ingest_pipeline.lib.warehouse import Warehouse

    settings = get_settings()
    warehouse = Warehouse(settings.resolved_warehouse_url)
    init_warehouse(warehouse)
    try:
        sources = read_source_instances(settings.tenants_file)
    except TenantsFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def chosen(i: SourceInstance | InvalidInstance) -> bool:
        return (tenant is None or i.tenant == tenant) and (source is None or i.name == source)

    selected = [i for i in sources.instances if chosen(i)]
    # Left out by the tenants file's reading (unknown type, invalid setting): failed, not run.
    invalid = [i for i in sources.invalid if chosen(i)]
    if not selected and not invalid:
        print("error: no source instance matches", file=sys.stderr)
        return 2
    for left_out in invalid:
        print(f"{left_out.type:<9} {left_out.partition_key:<28} failed  not run: {left_out.reason}")
    # Files unchanged since their last whole ingest: nothing to run (and, if that is every
    # instance asked for, Dagster is not even loaded).
    # The fingerprint is taken here, before any run reads the files, and recorded after them.
    to_run = []
    for source_instance in selected:
        fingerprint = input_fingerprints.take(source_instance)
        if same := input_fingerprints.unchanged(warehouse, source_instance, fingerprint):
            print(same.summary_line(), flush=True)
        else:
            to_run.append((source_instance, fingerprint))
    failed, quarantined = _ingest_through_dagster(warehouse, to_run) if to_run else (0, 0)
    failed += len(invalid)
    # Quarantined loads are shown, not failed: the runs succeeded and a replay retries them.
    held = f", {quarantined} with quarantined loads (a replay retries them)" if quarantined else ""
    print(f"{len(selected) + len(invalid) - failed} ok, {failed} failed{held}")
    return 1 if failed else 0


def _ingest_through_dagster(
    warehouse: Warehouse, instances: list[tuple[SourceInstance, Fingerprint | None]]
) -> tuple[int, int]:
    """Each instance's runs (`ingest_runs.ingest_instance`), its summary line printed; the input
    fingerprint taken before them recorded if they succeeded whole. Returns (instances failed,
    with quarantined loads)."""
    import dagster as dg

    from ingest_pipeline.cli.dagster_home import ensure_dagster_home
    from ingest_pipeline.cli.ingest_runs import ingest_instance
    from ingest_pipeline.definitions import ingest_defs
    from ingest_pipeline.defs.tenants.sensors import sync_partitions
    from ingest_pipeline.domain import input_fingerprints

    ensure_dagster_home(get_settings())
    defs = ingest_defs()  # no dbt, no S3 sensors: an ingest run uses neither
    failed = quarantined = 0
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance)
        for source_instance, before in instances:
            outcome = ingest_instance(defs, instance, source_instance)
            print(outcome.summary_line(), flush=True)
            failed += outcome.status != "ok"
            quarantined += bool(outcome.quarantined)
            if before and outcome.status == "ok" and not outcome.quarantined:
                input_fingerprints.record(warehouse, source_instance, before, outcome.run_id)
    return failed, quarantined
