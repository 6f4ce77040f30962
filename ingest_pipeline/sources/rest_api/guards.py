"""Guards around dlt's pagination of a REST resource: what dlt's paginators do not check.

dlt's rest_api keeps asking while its paginator has a next page, and reads whatever a 2xx answer
holds (dlt 1.31: only `page_number`/`offset` know a maximum, nothing remembers where it has been,
a missing data selector yields no rows, a non-JSON body is a bare `JSONDecodeError`). So every
resource's paginator (the one the tenants file configures, dlt's detection when none is) is
wrapped in a `GuardedPaginator`, which ends the instance's run with an error when:

- the next request (URL with its query, and JSON body) was already sent in this pagination:
  the API links back to an earlier page, and would be paged forever;
- `max_pages` pages were read and the API still has a next page (`DEFAULT_MAX_PAGES`);
- a 2xx answer is not JSON (names URL, status, content type and the start of the body);
- a page lacks the configured `data_selector`, or has it null (names URL, selector and the
  page's top-level keys): a silent `loaded=0` would look like "nothing new".

A pagination is one resource's run, or one parent record's for a dependent resource (dlt copies
the paginator per parent). URLs in messages are passed through dlt's `sanitize_url`, so a token in
a query string shows as `***`.
"""

from __future__ import annotations

import json
from typing import Any

from dlt.common import jsonpath
from dlt.sources.helpers.requests import Request, Response
from dlt.sources.helpers.rest_client.detector import PaginatorFactory
from dlt.sources.helpers.rest_client.paginators import BasePaginator, SinglePagePaginator
from dlt.sources.helpers.rest_client.redaction import sanitize_url

from ingest_pipeline.sources.rest_api.options import DEFAULT_MAX_PAGES

BODY_PREVIEW_CHARS = 100


class RestApiPageError(RuntimeError):
    """A page the pipeline must not go on from; the message says what arrived where."""


class PaginationLoopError(RestApiPageError):
    pass


class PageLimitError(RestApiPageError):
    pass


class UnexpectedPageError(RestApiPageError):
    pass


class GuardedPaginator(BasePaginator):
    """dlt's paginator (`inner`; None: detected from the first answer, as dlt would) plus guards."""

    def __init__(
        self,
        inner: BasePaginator | None,
        resource: str,
        data_selector: str | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ):
        super().__init__()
        if not isinstance(max_pages, int) or isinstance(max_pages, bool) or max_pages < 1:
            raise ValueError(f"resource {resource}: max_pages must be a positive integer")
        self.inner = inner
        self.resource = resource
        self.data_selector = data_selector
        self.max_pages = max_pages
        self._pages = 0
        self._seen: set[str] = set()

    @property
    def has_next_page(self) -> bool:
        return self.inner.has_next_page if self.inner is not None else True

    def init_request(self, request: Request) -> None:
        # A new pagination (a new run, or the next parent record): nothing seen yet.
        self._pages, self._seen = 0, set()
        if self.inner is not None:
            self.inner.init_request(request)
        # Appended after dlt's own status handler, so 4xx/5xx keep dlt's errors and retries.
        request.register_hook("response", self._check_page)
        self._remember(request)

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        self._pages += 1
        if self.inner is None:
            self.inner = _detect_paginator(response)
        self.inner.update_state(response, data)

    def update_request(self, request: Request) -> None:
        self.inner.update_request(request)
        if not self.inner.has_next_page:
            return
        if self._pages >= self.max_pages:
            raise PageLimitError(
                f"resource {self.resource}: read max_pages={self.max_pages} pages and the API "
                f"still has a next page ({_request_url(request)}); raise the resource's "
                "max_pages if it really has that many"
            )
        self._remember(request)

    def _remember(self, request: Request) -> None:
        key = _request_key(request)
        if key in self._seen:
            raise PaginationLoopError(
                f"resource {self.resource}: the next page {_request_url(request)} was already "
                f"read in this run (after {self._pages} pages); the API's pagination loops"
            )
        self._seen.add(key)

    def _check_page(self, response: Response, *args: Any, **kwargs: Any) -> None:
        """A response hook: a 2xx page must be JSON and hold the data selector."""
        if not 200 <= response.status_code < 300:
            return  # errors are dlt's (raised before this hook), redirects are followed
        try:
            body = response.json()
        except ValueError:  # requests' JSONDecodeError is a ValueError
            raise UnexpectedPageError(_not_json_message(self.resource, response)) from None
        if self.data_selector:
            _check_selector(self.resource, self.data_selector, body, response)

    def __str__(self) -> str:
        return f"{self.inner} (guarded, max_pages {self.max_pages})"


def _detect_paginator(response: Response) -> BasePaginator:
    # dlt's own detection, as RESTClient does when no paginator is configured.
    paginator, _score = PaginatorFactory().create_paginator(response)
    return paginator or SinglePagePaginator()


def _check_selector(resource: str, selector: str, body: Any, response: Response) -> None:
    values = jsonpath.find_values(selector, body) if isinstance(body, dict | list) else []
    if values and any(value is not None for value in values):
        return
    found = "is null" if values else "is missing"
    raise UnexpectedPageError(
        f"resource {resource}: the page {sanitize_url(response.url)} (status "
        f"{response.status_code}) has no data: the data_selector '{selector}' {found}; "
        f"it holds {_describe(body)}"
    )


def _describe(body: Any) -> str:
    if isinstance(body, dict):
        keys = ", ".join(repr(k) for k in list(body)[:20])
        return f"the top-level keys [{keys}]" if body else "an empty JSON object"
    return f"a JSON {type(body).__name__}, not an object"


def _not_json_message(resource: str, response: Response) -> str:
    content_type = response.headers.get("Content-Type") or "no Content-Type"
    preview = " ".join(response.text[:BODY_PREVIEW_CHARS].split())
    return (
        f"resource {resource}: the page {sanitize_url(response.url)} answered "
        f"{response.status_code} with {content_type}, not JSON; it starts with {preview!r}"
    )


def _full_url(request: Request) -> str:
    """The URL the request will ask for: its params merged into the query."""
    prepared = Request(request.method, request.url, params=request.params or {}).prepare()
    return prepared.url or request.url


def _request_url(request: Request) -> str:
    return sanitize_url(_full_url(request))


def _request_key(request: Request) -> str:
    # Unsanitized (a cursor may travel as `token=`), plus the JSON body (POST searches' cursors).
    body = json.dumps(request.json, sort_keys=True, default=str) if request.json else ""
    return f"{request.method.upper()} {_full_url(request)} {body}"
