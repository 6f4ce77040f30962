"""A small threaded HTTP server on 127.0.0.1 with a request log and injectable faults."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Faults:
    """Faults served before normal answers: each listed status is answered once, in order."""

    queue: list[int] = field(default_factory=list)
    retry_after_seconds: int = 1


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[str, dict[str, str], dict[str, list[str]]], Response]


class SandboxServer:
    """Serve `handler(path, headers, query)` on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, handler: Handler, port: int = 0):
        self.handler = handler
        self.faults = Faults()
        self.requests: list[dict[str, Any]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._request_handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        from urllib.parse import parse_qs, urlsplit

        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                query = parse_qs(parts.query)
                server.requests.append({"path": parts.path, "query": query, "headers": headers})
                if server.faults.queue:
                    response = _fault(server.faults.queue.pop(0), server.faults)
                else:
                    response = server.handler(parts.path, headers, query)
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        return RequestHandler


def _fault(status: int, faults: Faults) -> Response:
    headers = {"Content-Type": "application/json"}
    if status == 429:
        headers["Retry-After"] = str(faults.retry_after_seconds)
    return Response(status, b'{"error": "injected fault"}', headers)
