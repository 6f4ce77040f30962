"""The demo world: every source type's demo part, its secrets, and the demo tenants file.

Each source type brings its own part (`demo` of its declaration: a sandbox with demo data, or
files) and the demo values of the secrets its instances name; nothing here names a type. A
platform's sandbox module declares that part itself, `DEMO = sandbox_part(...)` beside its demo
factory, so this module imports no sandbox.
`make demo` and `make dev` start the same world and use the same tenants file,
`tenants.example.yaml` at the repository's root. Each sandbox listens on its documented
default port (the one the example names) unless that port is taken; then it takes a free one
and the tenants file written under the data dir names the port it got. Demo secrets are demo
values, set in the environment of this process only where nothing is set yet.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ingest_pipeline.lib.repo_files import EXAMPLE_TENANTS_FILE
from ingest_pipeline.lib.source_types import SOURCE_TYPES, DemoPart

FEEDBACK_TENANT = "initech"

# The demo values of the intake's, the read API's and the privacy secrets the demo tenants name;
# each source type's own secrets come with its demo part (its sandbox module's `DEMO`).
DEMO_INTAKE_SECRETS = {
    "DEMO_ACME_INTAKE_TOKEN": "demo-acme-intake-token",
    "DEMO_ACME_READ_TOKEN": "demo-acme-read-token",
    "DEMO_ACME_STRIPE_WHSEC": "demo-acme-stripe-whsec",
    "DEMO_ACME_PII_KEY": "demo-acme-pii-key",
    "DEMO_INITECH_INTERCOM_WEBHOOK": "demo-initech-intercom-webhook",
}


def demo_parts() -> dict[str, DemoPart]:
    """{source type: its part of the demo world}, for every registered type that has one."""
    parts = {name: t.declared.demo for name, t in SOURCE_TYPES.items()}
    return {name: part for name, part in parts.items() if part is not None}


def demo_secrets() -> dict[str, str]:
    """Every secret the demo tenants name, with its demo value."""
    secrets = dict(DEMO_INTAKE_SECRETS)
    for part in demo_parts().values():
        secrets.update(part.secrets)
    return secrets


def set_demo_secrets() -> dict[str, str]:
    """The demo secrets in this process's environment (kept where already set); their values."""
    names = demo_secrets()
    for name, value in names.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in names}


def serve(running: contextlib.ExitStack, sandbox: Any) -> str:
    """Start a sandbox (one with a `server`), stopped when `running` closes; its URL."""
    sandbox.server.start()
    running.callback(sandbox.server.stop)
    return sandbox.server.url


def sandbox_part(
    default_port: int, make: Callable[[int], Any], secrets: Mapping[str, str] | None = None
) -> DemoPart:
    """A demo part that is one loopback sandbox: `make(port)` builds it with its demo data;
    tenants.example.yaml names it `http://127.0.0.1:<default_port>`."""

    def start(running: contextlib.ExitStack, demo_dir: Path, port: int) -> str:
        return serve(running, make(port))

    return DemoPart(f"http://127.0.0.1:{default_port}", start, default_port, dict(secrets or {}))


def port_or_free(port: int, host: str = "127.0.0.1") -> int:
    """`port` when nothing listens on it, else 0 (the server picks a free one)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port


@dataclass
class DemoWorld:
    # {source type: the address its part got (a sandbox's URL, the csv folder)}
    addresses: dict[str, str]
    tenants_file: Path

    @property
    def secret_names(self) -> list[str]:
        return list(demo_secrets())


def start_demo_world(
    running: contextlib.ExitStack,
    data_dir: Path,
    default_ports: bool = True,
    schedule: str | None = None,
    tenants_file: Path | None = None,
) -> DemoWorld:
    """Start every source type's demo part (stopped when `running` closes: sandboxes, the
    demo CSV under `data_dir/demo/`), write the tenants file (default
    `data_dir/demo/tenants.yaml`), and return both. `schedule` replaces every instance's cron
    (tests use every minute)."""
    set_demo_secrets()
    demo_dir = (data_dir / "demo").resolve()
    addresses = {}
    for name, part in demo_parts().items():
        port = port_or_free(part.default_port) if default_ports and part.default_port else 0
        addresses[name] = part.start(running, demo_dir, port)
    tenants = render_demo_tenants(addresses, schedule)
    tenants_file = tenants_file or demo_dir / "tenants.yaml"
    tenants_file.parent.mkdir(parents=True, exist_ok=True)
    tenants_file.write_text(yaml.safe_dump(tenants, sort_keys=False), encoding="utf-8")
    return DemoWorld(addresses, tenants_file)


def render_demo_tenants(addresses: dict[str, str], schedule: str | None = None) -> dict[str, Any]:
    """tenants.example.yaml with each demo part's example address replaced by the one it got."""
    text = EXAMPLE_TENANTS_FILE.read_text(encoding="utf-8")
    for name, part in demo_parts().items():
        text = text.replace(part.example_address, addresses[name])
    document = yaml.safe_load(text)
    if schedule:
        for tenant in document["tenants"].values():
            for source in tenant.get("sources") or []:
                source["schedule"] = schedule
    return document
