"""The demo world: every sandbox with its demo data and secrets, and the demo tenants file.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ingest_pipeline.cli.dagster_home import REPO_ROOT
from ingest_pipeline.sandbox import discourse, intercom, playstore, stripe, twitter
from ingest_pipeline.sandbox.catalog_api import CatalogApi, sample_products
from ingest_pipeline.sandbox.feeds import FeedServer

EXAMPLE_TENANTS_FILE = REPO_ROOT / "tenants.example.yaml"
FEEDBACK_TENANT = "initech"
# The folder of the csv instance, as the example names it (relative to the repository).
EXAMPLE_CSV_FOLDER = ".data/demo/landing/acme/catalog"
SAMPLE_CSV = (
    "sku;name;link;updated\n"
    "SKU-1;Espresso machine;https://shop.example/sku-1;2026-01-10T09:00:00Z\n"
    "SKU-2;Grinder;https://shop.example/sku-2;2026-01-11\n"
    "SKU-3;Milk jug;not a url;2026-01-12\n"
    ";Nameless;https://shop.example/x;2026-01-13\n"
)

# The documented default port of each sandbox (tenants.example.yaml names them).
DEFAULT_PORTS = {
    "catalog": 8081,
    "feeds": 8082,
    "playstore": 8083,
    "twitter": 8084,
    "discourse": 8085,
    "intercom": 8086,
    "stripe": 8087,
}

# Every secret the demo tenants name, with its demo value.
DEMO_SECRETS = {
    "DEMO_CATALOG_TOKEN": "demo-token",
    "DEMO_PLAYSTORE_SECRET": "demo-playstore-secret",
    "DEMO_TWITTER_SECRET": "demo-twitter-secret",
    "DEMO_DISCOURSE_SECRET": "demo-discourse-secret",
    "DEMO_INTERCOM_SECRET": "demo-intercom-secret",
    "DEMO_STRIPE_SECRET": "demo-stripe-secret",
    "DEMO_ACME_INTAKE_TOKEN": "demo-acme-intake-token",
    "DEMO_ACME_STRIPE_WHSEC": "demo-acme-stripe-whsec",
    "DEMO_INITECH_INTERCOM_WEBHOOK": "demo-initech-intercom-webhook",
}


def set_demo_secrets() -> dict[str, str]:
    """The demo secrets in this process's environment (kept where already set); their values."""
    for name, value in DEMO_SECRETS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in DEMO_SECRETS}


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
    sandboxes: dict[str, Any]
    tenants_file: Path

    def url(self, name: str) -> str:
        return self.sandboxes[name].server.url

    @property
    def secret_names(self) -> list[str]:
        return list(DEMO_SECRETS)


def start_demo_world(
    running: contextlib.ExitStack,
    data_dir: Path,
    default_ports: bool = True,
    schedule: str | None = None,
    tenants_file: Path | None = None,
) -> DemoWorld:
    """Start every sandbox (stopped when `running` closes), write the demo CSV under
    `data_dir/demo/` and the tenants file (default `data_dir/demo/tenants.yaml`), and return
    both. `schedule` replaces every instance's cron (tests use every minute)."""
    secrets = set_demo_secrets()
    sandboxes = _sandboxes(secrets, default_ports)
    for sandbox in sandboxes.values():
        sandbox.server.start()
        running.callback(sandbox.server.stop)
    # A little weather: the platforms rate-limit and fail now and then; dlt retries.
    sandboxes["twitter"].server.faults.every_nth_rate_limited = 3
    sandboxes["intercom"].server.faults.queue = [503]
    demo_dir = (data_dir / "demo").resolve()
    csv_folder = demo_dir / "landing" / "acme" / "catalog"
    csv_folder.mkdir(parents=True, exist_ok=True)
    (csv_folder / "catalog.csv").write_text(SAMPLE_CSV, encoding="utf-8")
    tenants = render_demo_tenants(
        {name: s.server.url for name, s in sandboxes.items()}, csv_folder, schedule
    )
    tenants_file = tenants_file or demo_dir / "tenants.yaml"
    tenants_file.parent.mkdir(parents=True, exist_ok=True)
    tenants_file.write_text(yaml.safe_dump(tenants, sort_keys=False), encoding="utf-8")
    return DemoWorld(sandboxes, tenants_file)


def render_demo_tenants(
    urls: dict[str, str], csv_folder: Path, schedule: str | None = None
) -> dict[str, Any]:
    """tenants.example.yaml with each sandbox's default address replaced by the one it got."""
    text = EXAMPLE_TENANTS_FILE.read_text(encoding="utf-8")
    for name, port in DEFAULT_PORTS.items():
        text = text.replace(f"http://127.0.0.1:{port}", urls[name])
    document = yaml.safe_load(text.replace(EXAMPLE_CSV_FOLDER, str(csv_folder)))
    if schedule:
        for tenant in document["tenants"].values():
            for source in tenant.get("sources") or []:
                source["schedule"] = schedule
    return document


def _sandboxes(secrets: dict[str, str], default_ports: bool) -> dict[str, Any]:
    def port(name: str) -> int:
        return port_or_free(DEFAULT_PORTS[name]) if default_ports else 0

    sandboxes: dict[str, Any] = {
        "catalog": CatalogApi(secrets["DEMO_CATALOG_TOKEN"], sample_products(12), port("catalog")),
        "feeds": FeedServer(port=port("feeds")),
        "playstore": playstore.PlayStoreSandbox(port("playstore")),
        "twitter": twitter.TwitterSandbox(port("twitter")),
        "discourse": discourse.DiscourseSandbox(port("discourse")),
        "intercom": intercom.IntercomSandbox(port("intercom")),
        "stripe": stripe.StripeSandbox(port("stripe")),
    }
    sandboxes["playstore"].add_account(
        secrets["DEMO_PLAYSTORE_SECRET"],
        f"com.{FEEDBACK_TENANT}.app",
        playstore.sample_reviews(25),
    )
    sandboxes["twitter"].add_account(secrets["DEMO_TWITTER_SECRET"], *twitter.sample_tweets(30))
    sandboxes["discourse"].add_account(
        secrets["DEMO_DISCOURSE_SECRET"], "system", discourse.sample_posts(18)
    )
    sandboxes["intercom"].add_account(
        secrets["DEMO_INTERCOM_SECRET"], intercom.sample_conversations(12)
    )
    sandboxes["stripe"].add_account(secrets["DEMO_STRIPE_SECRET"], stripe.sample_payment_events(12))
    return sandboxes
