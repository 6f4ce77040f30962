"""`ingest-pipeline`: what Dagster has no single command for (see README)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ingest_pipeline.settings import get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ingest-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="materialize source instances through Dagster")
    ingest.add_argument("--tenant", help="only this tenant's instances")
    ingest.add_argument("--source", help="only instances with this name")
    commands.add_parser("init", help="create the warehouse schemas and normalized tables")
    upload = commands.add_parser("upload-url", help="print a presigned PUT URL for a new upload")
    upload.add_argument("--tenant", required=True)
    upload.add_argument("--kind", required=True, help="logs, events or crawl")
    upload.add_argument("--filename", help="the file's name (kept, made safe, in the key)")
    upload.add_argument("--expires", type=int, default=3600, help="seconds the URL is valid")
    commands.add_parser(
        "demo", help="run the whole pipeline on sandbox sources and print a summary"
    )
    dev = commands.add_parser(
        "dev", help="run the whole local platform (what `make dev` runs) until Ctrl-C"
    )
    dev.add_argument("--host", default="127.0.0.1", help="address of the Dagster UI")
    dev.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    dev.add_argument("--free-ports", action="store_true", help="every part on a free port (tests)")
    dev.add_argument("--schedule", help="cron for every demo instance (default: the example's)")
    serve = commands.add_parser(
        "serve-intake", help="serve the HTTP intake: signed webhooks and upload URLs"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument(
        "--debug", action="store_true", help="tracebacks in answers (refused in production)"
    )
    args = parser.parse_args(argv)
    from ingest_pipeline.lib.warehouse import WarehouseBusyError

    try:
        return _run(args)
    except WarehouseBusyError as exc:  # a one-line answer, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "init":
        return cmd_init()
    if args.command == "ingest":
        return cmd_ingest(args.tenant, args.source)
    if args.command == "upload-url":
        return cmd_upload_url(args.tenant, args.kind, args.filename, args.expires)
    if args.command == "serve-intake":
        return cmd_serve_intake(args.host, args.port, args.debug)
    if args.command == "dev":
        from ingest_pipeline.dev import run_dev

        return run_dev(args.host, args.port, not args.free_ports, args.schedule)
    from ingest_pipeline.demo import run_demo

    return run_demo()


def cmd_init() -> int:
    from ingest_pipeline.lib.normalized_tables import init_warehouse
    from ingest_pipeline.lib.warehouse import Warehouse

    settings = get_settings()
    warehouse = Warehouse(settings.resolved_warehouse_url)
    for table in init_warehouse(warehouse):
        print(f"ready: {table} ({warehouse.dialect})")
    return 0


def cmd_upload_url(tenant: str, kind: str, filename: str | None, expires: int) -> int:
    """Record the upload as Created and print its URL (stdout: the URL alone, for scripts)."""
    from ingest_pipeline.lib.landing import LandingError, issue_upload_url
    from ingest_pipeline.lib.normalized_tables import init_warehouse
    from ingest_pipeline.lib.tenants import TenantsFileError, tenant_names
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


def cmd_ingest(tenant: str | None = None, source: str | None = None) -> int:
    import dagster as dg

    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.defs.tenants.sensors import sync_partitions
    from ingest_pipeline.lib.dagster_home import ensure_dagster_home
    from ingest_pipeline.lib.ingest_runs import ingest_instance
    from ingest_pipeline.lib.normalized_tables import init_warehouse
    from ingest_pipeline.lib.source_types import SOURCE_TYPES
    from ingest_pipeline.lib.tenants import TenantsFileError, load_source_instances
    from ingest_pipeline.lib.warehouse import Warehouse

    settings = get_settings()
    init_warehouse(Warehouse(settings.resolved_warehouse_url))
    try:
        selected = [
            i
            for i in load_source_instances(settings.tenants_file)
            if (tenant is None or i.tenant == tenant) and (source is None or i.name == source)
        ]
    except TenantsFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not selected:
        print("error: no source instance matches", file=sys.stderr)
        return 2
    ensure_dagster_home(settings)
    defs = load_defs()
    failed = quarantined = 0
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance)
        for source_instance in selected:
            if source_instance.type not in SOURCE_TYPES:
                print(
                    f"{source_instance.type:<9} {source_instance.partition_key:<28} skipped "
                    "(unknown source type)"
                )
                continue
            outcome = ingest_instance(defs, instance, source_instance)
            print(outcome.summary_line(), flush=True)
            failed += outcome.status != "ok"
            quarantined += bool(outcome.quarantined)
    # Quarantined loads are shown, not failed: the runs succeeded and a replay retries them.
    held = f", {quarantined} with quarantined loads (a replay retries them)" if quarantined else ""
    print(f"{len(selected) - failed} ok, {failed} failed{held}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
