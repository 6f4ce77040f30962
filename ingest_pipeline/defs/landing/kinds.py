"""Every landing kind, declared once: its key layout, how its objects are read, where its rows go,
its asset. The sensors, jobs and assets of the landing are generated from LANDING_KINDS
(assets.py, sensors.py); nothing else keys anything by a kind's name.

The pure part of a kind (its name and key layout: what the intake, `upload-url` and the uploads
lifecycle need) is declared in domain/landing.py's KEY_LAYOUTS, which must not import Dagster;
each kind here names its layout, and the two lists must declare the same kinds (checked when this
module is imported). Names follow from the kind: job `land_<kind>`, sensor
`landing_<kind>_sensor`, run tag `ingest/landing_kind=<kind>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import dagster as dg

from ingest_pipeline.defs.landing.loaders import (
    EVENTS_SOURCE,
    LandingWriter,
    WebhooksWriter,
    read_crawl,
    read_events,
    read_logs,
    read_webhooks,
)
from ingest_pipeline.domain.entities import EVENTS, ITEMS, LOG_RECORDS
from ingest_pipeline.domain.landing import KEY_LAYOUTS, KeyLayout, key_layout
from ingest_pipeline.domain.uploads import LandedObject
from ingest_pipeline.lib.warehouse import Warehouse


@dataclass(frozen=True)
class LandingKind:
    """One landing kind: where its objects are, how one is read, where its rows go."""

    layout: KeyLayout
    # Reads one object's body into the writer: rows, rejects, or LandedFileError (loaders.py).
    read: Callable[[LandingWriter, LandedObject, BinaryIO], None]
    writer: Callable[[Warehouse], LandingWriter]  # one per run: buffers and upserts its rows
    asset_key: dg.AssetKey
    description: str
    # The entities whose tables it writes beside their pull sources: its asset is a parent of
    # theirs (normalized/<entity>), so the lineage shows both ways into one table.
    shares_entities: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.layout.kind

    @property
    def entities(self) -> tuple[str, ...]:
        """The entities whose tables it writes: those it shares, else the one its asset is."""
        return self.shares_entities or (self.asset_key.path[-1],)

    @property
    def job_name(self) -> str:
        """The job a landing run is a run of; run history and the UI know it by this name."""
        return f"land_{self.name}"

    @property
    def sensor_name(self) -> str:
        """Its sensor's name, which also keys the sensor's cursor in the instance: keep it."""
        return f"landing_{self.name}_sensor"

    @property
    def op_name(self) -> str:
        """The asset's op, as the run config of a landing run names it."""
        return self.asset_key.to_python_identifier()


LANDING_KINDS = (
    LandingKind(
        key_layout("logs"),
        read_logs,
        partial(
            LandingWriter,
            table=LOG_RECORDS,
            source="logs",
            replaces_object_rows=True,
            landed_kind="logs",
        ),
        dg.AssetKey(["normalized", "log_records"]),
        "Uploaded log files (logs/<tenant>/...), one row per line keyed (object key, line "
        "number); lines that do not parse go to normalized.rejected_records.",
    ),
    LandingKind(
        key_layout("events"),
        read_events,
        partial(LandingWriter, table=EVENTS, source=EVENTS_SOURCE, landed_kind="events"),
        dg.AssetKey(["normalized", "events"]),
        "App event batches (events/<tenant>/..., NDJSON or CSV), unique on "
        "(tenant_id, event_id): re-sent and overlapping batches add nothing.",
    ),
    LandingKind(
        key_layout("crawl"),
        read_crawl,
        partial(LandingWriter, table=ITEMS, source="crawl", landed_kind="crawl"),
        # Crawl batches land in normalized.items, which normalized/items (the pulled item
        # sources) also writes; one table, two assets that each own their rows (source_type
        # 'crawl').
        dg.AssetKey(["landing", "crawl"]),
        "Partner crawl batches (crawl/<tenant>/<partner>/..., JSON array or NDJSON) "
        "upserted into normalized.items on (tenant, 'crawl', partner, externalId).",
        shares_entities=("items",),
    ),
    LandingKind(
        key_layout("webhooks"),
        read_webhooks,
        WebhooksWriter,
        # Deliveries land in two tables (feedback, payments), each shared with a pull source.
        dg.AssetKey(["landing", "webhooks"]),
        "Webhook deliveries the intake verified and landed (webhooks/<provider>/<tenant>/"
        "...): Intercom conversations into normalized.feedback on the Intercom pull source's "
        "key, Stripe payment events into normalized.payments on the PaymentIntent id.",
        shares_entities=("feedback", "payments"),
    ),
)
_BY_NAME = {kind.name: kind for kind in LANDING_KINDS}
if sorted(_BY_NAME) != sorted(layout.kind for layout in KEY_LAYOUTS) or len(_BY_NAME) != len(
    LANDING_KINDS
):
    raise RuntimeError(
        "defs/landing/kinds.py LANDING_KINDS and domain/landing.py KEY_LAYOUTS must declare the "
        "same kinds, each once"
    )


def landing_kind(name: str) -> LandingKind:
    """The declared kind `name`; KeyError for a kind that is not declared."""
    return _BY_NAME[name]


def landing_parents(entity_name: str) -> list[dg.AssetKey]:
    """The assets of the landing kinds that write the entity's table beside its pull sources."""
    return [kind.asset_key for kind in LANDING_KINDS if entity_name in kind.shares_entities]
