"""The intake service in a background thread on a loopback port (the demo; tools)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from ingest_pipeline.intake.app import create_app
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.settings import Settings


@contextlib.contextmanager
def running_intake(
    settings: Settings, host: str = "127.0.0.1", port: int = 0, **app_options: Any
) -> Iterator[str]:
    """Serve the intake over real HTTP until the block ends; yields its base URL. A clean stop
    flushes the audit queue. `port` 0 takes a free one; `app_options` go to `create_app`."""
    port = port or free_port(host)
    config = uvicorn.Config(
        create_app(settings, **app_options),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the intake service did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        if thread.is_alive():
            raise RuntimeError("the intake service did not stop")
