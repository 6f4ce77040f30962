"""REST API, CSV and RSS end to end: raw → normalized/items through real Dagster runs."""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ingest_pipeline.cli.ingest_runs import AFTER_RUN_TAG
from ingest_pipeline.sandbox.catalog_api import sample_products
from ingest_pipeline.sandbox.feeds import RSS2, FeedServer
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer
from ingest_pipeline_tests.conftest import API_TOKEN, csv_instance, rest_api_instance

ITEMS_SNAPSHOT = (
    "SELECT tenant_id, source_type, source_instance, external_id, title, summary, url, author, "
    "published_at, updated_at, raw_load_id, ingested_at FROM normalized.items ORDER BY 1, 2, 3, 4"
)


def write_csv(folder: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode(encoding))


def test_three_sources_end_to_end_and_rerun_is_identical(env, catalog_api, feed_server):
    landing = env.tmp_path / "landing"
    write_csv(landing, "a.csv", "sku;name;link;updated\nA1;Anvil;https://x.example/a1;2026-01-02\n")
    env.write_tenants(
        {
            "acme": [
                rest_api_instance(catalog_api),
                csv_instance(landing),
                {"type": "rss", "name": "eng-blog", "url": f"{feed_server.server.url}/feed.xml"},
            ]
        }
    )

    outcomes = env.ingest()
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"], [o.error for o in outcomes]
    assert [o.rows_normalized for o in outcomes] == [5, 1, 3]
    counts = env.rows("SELECT source_type, count(*) FROM normalized.items GROUP BY 1 ORDER BY 1")
    assert counts == [("csv", 1), ("rest_api", 5), ("rss", 3)]
    # Timestamps are timezone-aware UTC (RSS pubDate was +0100).
    published = env.rows("SELECT published_at FROM normalized.items WHERE external_id = 'post-1'")[
        0
    ][0]
    assert published.utcoffset().total_seconds() == 0
    assert (published.hour, published.minute) == (8, 30)

    before = env.rows(ITEMS_SNAPSHOT)
    again = env.ingest()
    assert [o.status for o in again] == ["ok", "ok", "ok"]
    assert env.rows(ITEMS_SNAPSHOT) == before


def test_rest_api_pages_incremental_and_update(env, catalog_api):
    env.write_tenants({"acme": [rest_api_instance(catalog_api)]})
    [first] = env.ingest()
    assert first.status == "ok" and first.rows_loaded == 5
    product_pages = [r for r in catalog_api.server.requests if r.path.endswith("/products")]
    assert len(product_pages) == 3  # 5 products, 2 a page
    assert all(r.headers["authorization"] == f"Bearer {API_TOKEN}" for r in product_pages)

    catalog_api.server.requests.clear()
    changed = dict(
        catalog_api.products[4], name="Product 5 renamed", updated_at="2026-02-01T00:00:00Z"
    )
    catalog_api.products[4] = changed
    catalog_api.products += sample_products(2, start=6)
    for n, product in enumerate(catalog_api.products[5:], start=6):
        product["updated_at"] = f"2026-02-0{n - 4}T00:00:00Z"
    [second] = env.ingest()
    assert second.status == "ok"
    # Only the changed and the new records are loaded, asked for with the cursor.
    assert second.rows_loaded == 3
    # The API is asked only for records past the last cursor value of the first run.
    assert catalog_api.server.requests[0].query["updated_since"] == ["2026-01-01T05:00:00Z"]
    assert env.rows("SELECT count(*) FROM normalized.items") == [(7,)]
    assert env.rows("SELECT title FROM normalized.items WHERE external_id = '5'") == [
        ("Product 5 renamed",)
    ]


def test_rest_api_429_and_500_are_retried(duck_env, catalog_api):
    duck_env.write_tenants({"acme": [rest_api_instance(catalog_api)]})
    catalog_api.server.faults.queue = [429, 500]
    [outcome] = duck_env.ingest()
    assert outcome.status == "ok", outcome.error
    assert outcome.rows_normalized == 5
    assert len(catalog_api.server.requests) == 3 + 2  # three pages plus the two faults


def test_rest_api_bad_token_fails_only_that_instance(
    duck_env, catalog_api, feed_server, monkeypatch
):
    monkeypatch.setenv("OTHER_TOKEN", "value-of-other-token-7c1")
    bad = rest_api_instance(catalog_api, name="stale-creds")
    bad["client"]["auth"]["token_env"] = "OTHER_TOKEN"
    duck_env.write_tenants(
        {
            "acme": [bad],
            "globex": [
                {"type": "rss", "name": "blog", "url": f"{feed_server.server.url}/atom.xml"}
            ],
        }
    )
    bad_outcome, good_outcome = duck_env.ingest()
    assert bad_outcome.status == "failed"
    assert bad_outcome.error.startswith(
        "rest_api source acme.stale-creds failed: HTTPError: 401 Client Error: Unauthorized "
        f"for url: {catalog_api.server.url}/api/products?"
    ), bad_outcome.error
    assert "value-of-other-token-7c1" not in bad_outcome.error  # the secret value never shows
    assert good_outcome.status == "ok" and good_outcome.rows_normalized == 1


def test_missing_secret_is_a_clear_error(duck_env, catalog_api, monkeypatch):
    monkeypatch.delenv("ACME_API_TOKEN")
    duck_env.write_tenants({"acme": [rest_api_instance(catalog_api)]})
    [outcome] = duck_env.ingest()
    assert outcome.status == "failed"
    assert "ACME_API_TOKEN is not set" in outcome.error


def test_malformed_csv_rows_go_to_rejects_with_reason(env):
    landing = env.tmp_path / "landing"
    write_csv(
        landing,
        "items.csv",
        "sku,name,link,updated\n"
        "1,Good,https://x.example/1,2026-01-01T10:00:00+02:00\n"
        ",No sku,https://x.example/2,2026-01-01\n"
        "3,Bad url,ftp:/nope,2026-01-01\n"
        "4,Bad date,https://x.example/4,yesterday\n",
    )
    env.write_tenants({"acme": [csv_instance(landing)]})
    [outcome] = env.ingest()
    assert (outcome.rows_loaded, outcome.rows_normalized, outcome.rows_rejected) == (4, 1, 3)
    rejects = dict(
        env.rows("SELECT record_ref, reason FROM normalized.rejected_records ORDER BY record_ref")
    )
    assert rejects.keys() == {
        "raw_csv.acme__catalog:items.csv:2",
        "raw_csv.acme__catalog:items.csv:3",
        "raw_csv.acme__catalog:items.csv:4",
    }
    assert "external_id" in rejects["raw_csv.acme__catalog:items.csv:2"]
    assert rejects["raw_csv.acme__catalog:items.csv:3"].startswith(
        "url: String should match pattern"
    )
    assert "published_at" in rejects["raw_csv.acme__catalog:items.csv:4"]
    payload = env.rows("SELECT payload FROM normalized.rejected_records WHERE reason LIKE 'url%'")
    assert '"Bad url"' in payload[0][0]
    # Re-processing the same raw rows does not add rejects.
    env.ingest()
    assert env.rows("SELECT count(*) FROM normalized.rejected_records") == [(3,)]


def test_csv_only_new_or_changed_files_and_sniffing(duck_env):
    landing = duck_env.tmp_path / "landing"
    write_csv(
        landing, "one.csv", "sku\tname\tlink\tupdated\n1\tOne\thttps://x.example/1\t2026-01-01\n"
    )
    duck_env.write_tenants({"acme": [csv_instance(landing)]})
    [first] = duck_env.ingest()
    assert first.rows_loaded == 1
    # Latin-1 bytes and ';' delimiters are sniffed.
    write_csv(landing, "two.csv", "sku;name;link;updated\n2;Crème brûlée;;2026-01-02\n", "latin-1")
    [second] = duck_env.ingest()
    assert second.rows_loaded == 1  # one.csv is not read again
    assert duck_env.rows("SELECT title FROM normalized.items WHERE external_id = '2'") == [
        ("Crème brûlée",)
    ]
    [third] = duck_env.ingest()
    assert third.rows_loaded == 0


def test_unparseable_csv_file_fails_its_instance_only(duck_env, feed_server):
    bad, good = duck_env.tmp_path / "bad", duck_env.tmp_path / "good"
    bad.mkdir()
    (bad / "junk.csv").write_bytes(bytes(range(256)) * 12)  # binary junk
    write_csv(good, "g.csv", "sku,name,link,updated\n9,Nine,,2026-01-01\n")
    duck_env.write_tenants(
        {"acme": [csv_instance(bad, name="bad"), csv_instance(good, name="good")]}
    )
    bad_outcome, good_outcome = duck_env.ingest()
    assert bad_outcome.status == "failed" and "junk.csv" in bad_outcome.error
    assert good_outcome.status == "ok" and good_outcome.rows_normalized == 1


def test_rss_formats_and_conditional_get(duck_env, feed_server):
    url = feed_server.server.url
    duck_env.write_tenants(
        {
            "acme": [
                {"type": "rss", "name": "rss2", "url": f"{url}/feed.xml"},
                {"type": "rss", "name": "rdf", "url": f"{url}/rdf.xml"},
                {"type": "rss", "name": "atom", "url": f"{url}/atom.xml"},
            ]
        }
    )
    assert [o.rows_normalized for o in duck_env.ingest()] == [3, 2, 1]
    rdf = duck_env.rows(
        "SELECT external_id, author, published_at FROM normalized.items "
        "WHERE source_instance = 'rdf' ORDER BY 1"
    )
    assert rdf[0][0] == "https://news.example/a" and rdf[0][1] == "Grace"
    assert rdf[0][2].hour == 8  # 10:00+02:00 in UTC
    atom = duck_env.rows(
        "SELECT external_id, url, published_at FROM normalized.items WHERE source_instance = 'atom'"
    )
    assert atom[0][0] == "urn:release:1.0" and atom[0][1] == "https://rel.example/1.0"
    assert (atom[0][2].day, atom[0][2].hour) == (2, 0)  # 23:00-01:00 is midnight UTC next day
    link_only = duck_env.rows(
        "SELECT url FROM normalized.items WHERE external_id LIKE '%link-only'"
    )
    assert link_only == [("https://blog.example/link-only",)]

    feed_server.server.requests.clear()
    second = duck_env.ingest()
    assert [o.rows_loaded for o in second] == [0, 0, 0]
    assert all("if-none-match" in r.headers for r in feed_server.server.requests)


def test_broken_feed_fails_only_its_instance(env, feed_server):
    url = feed_server.server.url
    env.write_tenants(
        {
            "acme": [{"type": "rss", "name": "broken", "url": f"{url}/broken.xml"}],
            "globex": [{"type": "rss", "name": "blog", "url": f"{url}/feed.xml"}],
        }
    )
    broken, healthy = env.ingest()
    assert broken.status == "failed" and "cannot be parsed" in broken.error
    assert healthy.status == "ok" and healthy.rows_normalized == 3
    assert env.rows("SELECT DISTINCT tenant_id FROM normalized.items") == [("globex",)]


def test_a_feed_over_the_size_limit_fails_alone_naming_it_and_the_limit(duck_env, monkeypatch):
    """feedparser holds a feed whole, so a feed is read up to INGEST_FEED_MAX_BYTES and no
    further: one that declares more (Content-Length) is refused before its body is read, one
    gzip-encoded (a small Content-Length) when its decoded bytes pass the limit. Each fails its
    own instance at once (not a transient fault: requested once), naming the feed and the limit;
    the tenant's feed under the limit loads as before."""
    monkeypatch.setenv("INGEST_FEED_MAX_BYTES", "10000")
    big = RSS2.replace(b"<description>", b"<description>" + b"x" * 20_000, 1)
    assert len(big) > 10_000 > len(RSS2) and len(gzip.compress(big)) < 10_000
    feeds = FeedServer({"/feed.xml": RSS2, "/big.xml": big})

    def handle(request: Request) -> Response:
        if request.path == "/big-gzip.xml":
            assert "gzip" in request.headers.get("accept-encoding", "")
            return Response(200, gzip.compress(big), {"Content-Encoding": "gzip"})
        return feeds.handle(request)

    server = SandboxServer(handle).start()
    try:
        url = server.url
        duck_env.write_tenants(
            {
                "acme": [
                    {"type": "rss", "name": "big", "url": f"{url}/big.xml"},
                    {"type": "rss", "name": "big-gzip", "url": f"{url}/big-gzip.xml"},
                    {"type": "rss", "name": "blog", "url": f"{url}/feed.xml"},
                ]
            }
        )
        declared, decoded, healthy = duck_env.ingest()
    finally:
        server.stop()
    limit = "larger than INGEST_FEED_MAX_BYTES (10000 bytes)"
    assert declared.status == "failed"
    assert f"FeedError: feed {url}/big.xml is {len(big)} bytes, {limit}" in declared.error
    assert decoded.status == "failed"
    assert f"FeedError: feed {url}/big-gzip.xml is {limit}" in decoded.error
    assert (healthy.status, healthy.rows_normalized) == ("ok", 3)
    assert sorted(r.path for r in server.requests) == ["/big-gzip.xml", "/big.xml", "/feed.xml"]
    assert duck_env.rows("SELECT DISTINCT source_instance FROM normalized.items") == [("blog",)]


def test_csv_from_an_s3_prefix(env, s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="landing")
    body = b"sku,name,link,updated\nS1,From S3,https://x.example/s1,2026-01-05\n"
    s3.put_object(Bucket="landing", Key="acme/catalog/one.csv", Body=body)
    s3.put_object(Bucket="landing", Key="acme/other/ignored.csv", Body=body)
    env.write_tenants({"acme": [csv_instance("s3://landing/acme/catalog")]})
    [outcome] = env.ingest()
    assert outcome.status == "ok", outcome.error
    assert (outcome.rows_loaded, outcome.rows_normalized) == (1, 1)
    assert env.rows("SELECT title FROM normalized.items") == [("From S3",)]
    [again] = env.ingest()
    assert again.rows_loaded == 0  # unchanged objects are not read again


def test_secret_values_never_reach_the_run_logs(duck_env, catalog_api, tmp_path, monkeypatch):
    # The CLI in its own process, as a user runs it: its stdout and stderr (Dagster's console
    # warnings, dlt's own log at DEBUG and its progress lines) are all captured.
    duck_env.write_tenants({"acme": [rest_api_instance(catalog_api)]})
    catalog_api.server.faults.queue = [500]  # a retry: dlt logs the failed request
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    environment = {**os.environ, "RUNTIME__LOG_LEVEL": "DEBUG"}
    cli = subprocess.run(
        [sys.executable, "-m", "ingest_pipeline.cli", "ingest"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:  # the one DAGSTER_HOME names
        runs = instance.get_runs()
        logged = {
            "the runs' event logs": "\n".join(
                str(entry) for run in runs for entry in instance.all_logs(run.run_id)
            ),
            "the runs themselves": "\n".join(str(run) for run in runs),
        }
    assert sorted(r.job_name for r in runs) == ["ingest_rest_api", "normalize_items"]
    sources = {
        "stdout": cli.stdout,
        "stderr": cli.stderr,
        **logged,
        "files under the data dir and DAGSTER_HOME": _text_files(tmp_path / "data", home),
    }
    # Each capture is really this run's, so an empty one cannot pass.
    assert "acme.catalog-api" in sources["stdout"] and " ok " in sources["stdout"]
    assert "acme.catalog-api" in sources["the runs' event logs"]
    assert f"{catalog_api.server.url}/api/products" in sources["stderr"]  # dlt's request log
    assert "_dlt_pipeline_state" in sources["files under the data dir and DAGSTER_HOME"]
    for name, text in sources.items():
        assert API_TOKEN not in text, f"the token is in {name}"


def _runs_after(env, run_id: str) -> list[str]:
    runs = env.instance.get_runs(dg.RunsFilter(tags={AFTER_RUN_TAG: run_id}))
    return [r.run_id for r in runs]


def _text_files(*folders: Path) -> str:
    """Every file under the folders, read as text (logs, dlt's state and load packages)."""
    files = [f for folder in folders for f in sorted(folder.rglob("*")) if f.is_file()]
    assert files, folders
    return "\n".join(f"{f}\n{f.read_bytes().decode(errors='replace')}" for f in files)
