"""The HTTP session of the platform APIs: dlt's retrying requests session, rate-limit aware.

dlt retries 429 and 5xx with exponential backoff and honours `Retry-After`. Some platforms
say when to come back with a reset time instead (`x-rate-limit-reset`, `X-RateLimit-Reset`: unix
seconds); a response hook turns that into the `Retry-After` dlt already understands, so the
waiting stays dlt's. 401/403 are not retried: they raise at once and fail the instance.
The session goes into each platform's rest_api client config (`sources/platform_sources.py`).
"""

from __future__ import annotations

import time
from typing import Any

from dlt.sources.helpers.requests import Client
from requests import Response, Session

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


def platform_session() -> Session:
    """A new retrying session with the reset hook (one per source instance's run)."""
    http = Client(session_attrs={"hooks": {"response": [reset_to_retry_after]}})
    http.configure()  # retry attempts, backoff and timeouts from dlt's runtime config
    return http.session
