"""REST API pages that dlt alone would page forever, load as nothing, or fail on obscurely.

Real HTTP against the catalog sandbox with its page faults on: each faulty instance's run fails
alone with a message naming what arrived where, while a healthy instance in the same tenants
file loads all its products.
"""

from __future__ import annotations

import pytest

from ingest_pipeline.sandbox.catalog_api import CatalogApi
from ingest_pipeline_tests.conftest import API_TOKEN, rest_api_instance, running_catalog_api

# A second catalog sandbox, healthy, beside the faulty one (the `catalog_api` fixture).
healthy_api = pytest.fixture(running_catalog_api, name="healthy_api")


def ingest_with_healthy(env, faulty: CatalogApi, healthy: CatalogApi, **resource):
    """The faulty instance (tenant acme) and a healthy one (tenant globex), one run each."""
    env.write_tenants(
        {
            "acme": [rest_api_instance(faulty, name="faulty", **resource)],
            "globex": [rest_api_instance(healthy)],
        }
    )
    bad, good = env.ingest()
    assert bad.status == "failed", bad.summary_line()
    assert good.status == "ok" and good.rows_normalized == 5, good.error
    assert env.rows("SELECT DISTINCT tenant_id FROM normalized.items") == [("globex",)]
    assert API_TOKEN not in bad.error
    return bad


def test_next_link_back_to_an_earlier_page_ends_with_the_url(duck_env, catalog_api, healthy_api):
    catalog_api.next_link_loops = True  # page 3 links to page 1, which links to page 2 again
    bad = ingest_with_healthy(duck_env, catalog_api, healthy_api)
    again = f"{catalog_api.server.url}/api/products?page=2&updated_since=2020-01-01T00%3A00%3A00Z"
    assert "PaginationLoopError" in bad.error and "resource products" in bad.error
    assert f"the next page {again} was already read" in bad.error
    # Pages 1, 2, 3, then page 1 again: the repeated link to page 2 is never asked for.
    assert len(catalog_api.server.requests) == 4


def test_page_limit_ends_an_api_that_never_ends(duck_env, catalog_api, healthy_api):
    catalog_api.endless = True  # a next link on every page, past the last product
    bad = ingest_with_healthy(duck_env, catalog_api, healthy_api, max_pages=4)
    assert "PageLimitError" in bad.error and "max_pages=4" in bad.error
    assert "page=5" in bad.error  # the page it did not ask for
    assert len(catalog_api.server.requests) == 4


@pytest.mark.parametrize("null_data", [False, True], ids=["missing", "null"])
def test_page_without_the_data_selector_is_an_error(duck_env, catalog_api, healthy_api, null_data):
    catalog_api.page_without_data, catalog_api.null_data = 2, null_data
    bad = ingest_with_healthy(duck_env, catalog_api, healthy_api)
    url = f"{catalog_api.server.url}/api/products?page=2&updated_since=2020-01-01T00%3A00%3A00Z"
    found = "is null" if null_data else "is missing"
    assert "UnexpectedPageError" in bad.error and f"the page {url} (status 200)" in bad.error
    assert f"the data_selector 'data' {found}" in bad.error
    keys = "['data', 'links']" if null_data else "['links']"
    assert f"it holds the top-level keys {keys}" in bad.error
    assert bad.rows_loaded == 0  # page 1's products are not loaded half-way either


def test_html_answer_with_200_is_a_clear_error(duck_env, catalog_api, healthy_api):
    catalog_api.html_page = 1
    bad = ingest_with_healthy(duck_env, catalog_api, healthy_api)
    assert "JSONDecodeError" not in bad.error
    assert "UnexpectedPageError" in bad.error
    assert f"{catalog_api.server.url}/api/products?updated_since=" in bad.error
    assert "answered 200 with text/html; charset=utf-8, not JSON" in bad.error
    # The first 100 characters, whitespace collapsed, quoted.
    assert 'it starts with "<!DOCTYPE html> <html><head><title>Service unavailable' in bad.error
    assert "We'll be back soon</h\"" in bad.error
    assert len(catalog_api.server.requests) == 1  # not retried: a 200 is an answer
