"""An HTTP client for platform APIs: dlt's RESTClient on dlt's retrying requests session.

dlt retries 429 and 5xx with exponential backoff and honours `Retry-After`. Some platforms
say when to come back with a reset time instead (`x-rate-limit-reset`, `X-RateLimit-Reset`: unix
seconds); a response hook turns that into the `Retry-After` dlt already understands, so the
waiting stays dlt's. 401/403 are not retried: they raise at once and fail the instance.
"""

from __future__ import annotations

import time
from typing import Any

from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import AuthConfigBase
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import Response

RESET_HEADERS = ("x-rate-limit-reset", "x-ratelimit-reset")


def reset_to_retry_after(response: Response, *args: Any, **kwargs: Any) -> Response:
    """On a 429 without Retry-After, derive it from a rate-limit reset timestamp."""
    if response.status_code != 429 or "Retry-After" in response.headers:
        return response
    for name in RESET_HEADERS:
        reset = response.headers.get(name)
        if reset and reset.strip().isdigit():
            response.headers["Retry-After"] = str(max(0, int(reset) - int(time.time())))
            break
    return response


def platform_client(
    base_url: str,
    headers: dict[str, str] | None = None,
    auth: AuthConfigBase | None = None,
    paginator: BasePaginator | None = None,
    data_selector: str | None = None,
) -> RESTClient:
    http = Client(session_attrs={"hooks": {"response": [reset_to_retry_after]}})
    http.configure()  # retry attempts, backoff and timeouts from dlt's runtime config
    return RESTClient(
        base_url=base_url.rstrip("/") + "/",
        headers=headers,
        auth=auth,
        paginator=paginator,
        data_selector=data_selector,
        session=http.session,
    )
