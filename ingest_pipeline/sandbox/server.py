"""A small threaded HTTP server on 127.0.0.1 with a request log and injectable faults.

Every sandbox (catalog API, feeds, the feedback platforms) is a handler on this server, so they
share the fault model: explicit statuses queued up, every Nth request rate-limited, a share of
5xx answers, slow answers, and an API that hangs: `hold()` keeps every request open, unanswered,
until `release()` (then each gets its normal answer, in the platform's own format). Each
platform says how its rate-limit answer looks.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        return (self.query.get(name) or [default])[0]

    @property
    def bearer_token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def retry_after_headers(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


@dataclass
class Faults:
    """Faults served instead of normal answers (all off by default)."""

    queue: list[int] = field(default_factory=list)  # statuses answered once each, in order
    every_nth_rate_limited: int = 0  # every Nth request answers 429
    error_share: float = 0.0  # this share of requests answers 503
    delay_seconds: float = 0.0  # every answer waits this long
    rate_limit_wait_seconds: int = 1
    seed: int = 7

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def pick(self, request_number: int) -> int | None:
        if self.queue:
            return self.queue.pop(0)
        if self.every_nth_rate_limited and request_number % self.every_nth_rate_limited == 0:
            return 429
        if self.error_share and self._random.random() < self.error_share:
            return 503
        return None


Handler = Callable[[Request], Response]
# A held request is answered after this long even if no one releases it: no thread waits for
# good once a test has ended.
HOLD_MAX_SECONDS = 900.0


class SandboxServer:
    """Serve `handler(request)` on 127.0.0.1; port 0 picks a free one."""

    def __init__(
        self,
        handler: Handler,
        port: int = 0,
        rate_limit_headers: Callable[[int], dict[str, str]] = retry_after_headers,
    ):
        self.handler = handler
        self.faults = Faults()
        self.rate_limit_headers = rate_limit_headers
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._held = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._request_handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def hold(self) -> None:
        """From now on, every request waits, its connection open and unanswered, until
        `release` (or HOLD_MAX_SECONDS): an API that hangs."""
        self._released.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones, as usual."""
        self._released.set()

    @property
    def held(self) -> int:
        """How many requests are waiting for `release` now."""
        with self._lock:
            return self._held

    def serve(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            fault = self.faults.pick(len(self.requests))
        if not self._released.is_set():
            with self._lock:
                self._held += 1
            try:
                self._released.wait(HOLD_MAX_SECONDS)
            finally:
                with self._lock:
                    self._held -= 1
        if self.faults.delay_seconds:
            time.sleep(self.faults.delay_seconds)
        if fault == 429:
            wait = self.faults.rate_limit_wait_seconds
            return json_response(429, {"error": "rate limited"}, self.rate_limit_headers(wait))
        if fault is not None:
            return json_response(fault, {"error": "injected fault"})
        return self.handler(request)

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                response = server.serve(request)
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (its timeout, while the answer was held)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        return RequestHandler
