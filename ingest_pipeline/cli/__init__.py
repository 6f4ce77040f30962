"""`ingest-pipeline`: what Dagster has no single command for (see README).

A command that starts, does its work and ends (`SHORT_COMMANDS`) is mostly start-up: it creates
a few million objects (Dagster's, dlt's, pydantic's classes and definitions) that live until the
process ends. Python's cyclic collector would scan them all again at every full collection and
once more when the interpreter exits (about 1.5 s of a 3-row `ingest`): in its own process (not
when a caller passes `argv`, as the tests do) such a command collects young objects less often
(`QUICK_GC_THRESHOLD`: full collections become rare) and, at its end, freezes what is left, so the
interpreter's exit does not scan it (`gc.freeze`). Nothing else changes: atexit handlers, module
teardown and the collection of cycles created while it runs are as before. The servers (`dev`,
`serve-*`, `worker`) keep Python's defaults.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

# Commands whose process ends when their work is done (see the module's docstring).
SHORT_COMMANDS = frozenset({"ingest", "init", "resume", "upload-url", "demo"})
# gc's first threshold for them: a young generation of 10,000 objects (Python's default: 700), so
# a collection of the young is rarer and one of everything (every 100 of those) rarer still; the
# peak memory stays as it was (50,000 added 3 MB to a 3-row ingest for no time measurable).
QUICK_GC_THRESHOLD = 10_000


class _LazyHelp(argparse.HelpFormatter):
    """Help texts may be functions, called only when a help is printed: `--help` imports
    nothing heavy (the landing kinds come from `domain/landing.py`, which imports boto3, dlt,
    pyarrow and the database drivers)."""

    def _format_action(self, action: argparse.Action) -> str:
        if callable(action.help):
            action.help = action.help()
        return super()._format_action(action)


def _kind_help() -> str:
    from ingest_pipeline.domain.landing import UPLOAD_KINDS

    return f"one of {', '.join(UPLOAD_KINDS)}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `argv` None: this process's own command line (the console script, `python -m`).
    own_short_process = argv is None and args.command in SHORT_COMMANDS
    if own_short_process:
        gc.set_threshold(QUICK_GC_THRESHOLD)
    try:
        return _main(args)
    finally:
        if own_short_process:
            gc.freeze()  # the interpreter's exit need not scan what lived to the end


def _main(args: argparse.Namespace) -> int:
    _configure_logging()
    from pydantic import ValidationError

    from ingest_pipeline.lib.warehouse import WarehouseBusyError

    try:
        return _run(args)
    except WarehouseBusyError as exc:  # a one-line answer, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # settings refused at start (celery without PostgreSQL, ...)
        from ingest_pipeline.domain.tenants import describe_errors

        print(f"error: invalid settings: {describe_errors(exc)}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The CLI's commands and options. Every command imports what it needs when it runs:
    importing the CLI and `--help` stay cheap."""
    parser = argparse.ArgumentParser(
        prog="ingest-pipeline", description=__doc__, formatter_class=_LazyHelp
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="materialize source instances through Dagster")
    ingest.add_argument("--tenant", help="only this tenant's instances")
    ingest.add_argument("--source", help="only instances with this name")
    commands.add_parser("init", help="create the warehouse schemas and normalized tables")
    resume = commands.add_parser(
        "resume", help="lift the pause of a source instance that failed on authentication"
    )
    resume.add_argument("tenant")
    resume.add_argument("instance", help="the instance's name in the tenants file")
    upload = commands.add_parser(
        "upload-url", help="print a presigned PUT URL for a new upload", formatter_class=_LazyHelp
    )
    upload.add_argument("--tenant", required=True)
    upload.add_argument("--kind", required=True, help=_kind_help)  # type: ignore[arg-type]
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
    api = commands.add_parser(
        "serve-api", help="serve the read-only HTTP API over the ingested data and the metrics"
    )
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--port", type=int, default=8091)
    api.add_argument(
        "--workers", type=int, default=1, help="server processes (each with its own pool)"
    )
    worker = commands.add_parser(
        "worker", help="a dagster-celery worker of this code location (INGEST_EXECUTOR=celery)"
    )
    worker.add_argument(
        "--name", help="the worker's name, @<host> added (default: dagster-<n>@<host>)"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="steps at once")
    worker.add_argument(
        "--queue", action="append", help="a queue to take steps from (default: dagster)"
    )
    return parser


def _configure_logging() -> None:
    """INGEST_LOG_FORMAT and INGEST_LOG_LEVEL, for every command (settings the command cannot
    read are its own error to report: then the defaults)."""
    from pydantic import ValidationError

    from ingest_pipeline.lib.logging_config import configure_logging
    from ingest_pipeline.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError:
        configure_logging()
        return
    configure_logging(settings.log_format, settings.log_level)


def _run(args: argparse.Namespace) -> int:
    from ingest_pipeline.cli.commands import cmd_ingest, cmd_init, cmd_serve_intake, cmd_upload_url

    if args.command == "init":
        return cmd_init()
    if args.command == "ingest":
        return cmd_ingest(args.tenant, args.source)
    if args.command == "resume":
        from ingest_pipeline.cli.commands import cmd_resume

        return cmd_resume(args.tenant, args.instance)
    if args.command == "upload-url":
        return cmd_upload_url(args.tenant, args.kind, args.filename, args.expires)
    if args.command == "serve-intake":
        return cmd_serve_intake(args.host, args.port, args.debug)
    if args.command == "serve-api":
        from ingest_pipeline.cli.commands import cmd_serve_api

        return cmd_serve_api(args.host, args.port, args.workers)
    if args.command == "worker":
        from ingest_pipeline.cli.worker import run_worker

        return run_worker(args.name, args.concurrency, args.queue or ["dagster"])
    if args.command == "dev":
        from ingest_pipeline.cli.dev import run_dev

        return run_dev(args.host, args.port, not args.free_ports, args.schedule)
    from ingest_pipeline.cli.demo import run_demo

    return run_demo()
