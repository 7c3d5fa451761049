"""A loopback HTTP server base for the fakes of outside systems: real sockets on 127.0.0.1,
a request log, and scripted faults (status, headers, raw body) served before normal answers."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


def authorised(request: Request, token: str, user: str | None = None) -> bool:
    """Whether the request carries the credentials: Basic `user:token` when a user is given
    (Jira Cloud, Bitbucket API tokens), else a Bearer token."""
    header = request.headers.get("authorization", "")
    if user:
        return header == "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    return header == f"Bearer {token}"


@dataclass
class Fault:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # only requests to this path; None: any


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request], Answer]


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 with a handler class: its URL, start and stop."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                """A client that gave up (a timeout test) is not the fake's problem."""

        self._httpd = Server(("127.0.0.1", 0), handler)
        # a short poll: `shutdown()` waits for it, and the default 0.5 s, four fakes a test, was
        # minutes of a suite's run spent stopping servers
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.02})

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        # `shutdown()` waits for the serving loop to say it ended, forever if it is not there
        # any more: asked only of a live loop, and not waited on for more than a few seconds
        if self._thread.is_alive():
            stopper = threading.Thread(target=self._httpd.shutdown, daemon=True)
            stopper.start()
            stopper.join(timeout=5)
        self._httpd.server_close()


class FakeServer(LoopbackServer):
    """Subclasses register routes with `self.route(method, path, handler)`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.latency = 0.0  # seconds added to every answer (benchmarks)
        self.trickle = 0.0  # seconds between the bytes of a body (a slow, trickling server)
        self.redirect_to: str | None = None  # answer everything with a 307 to this base URL
        self._routes: dict[tuple[str, str], Route] = {}
        self._prefixes: list[tuple[str, str, Route]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                request = Request(self.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                status, payload, headers = owner._answer(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if owner.trickle:
                    import time

                    for byte in payload:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(owner.trickle)
                else:
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._serve(Handler)

    def route(self, method: str, path: str, handler: Route) -> None:
        self._routes[(method, path)] = handler

    def route_prefix(self, method: str, prefix: str, handler: Route) -> None:
        self._prefixes.append((method, prefix, handler))

    def fail_next(self, status: int, body: object = b"",
                  headers: dict[str, str] | None = None, times: int = 1,
                  path: str | None = None) -> None:
        """Answer the next `times` requests (to `path`, else whatever they ask) with this status
        and body."""
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        heads = {"Content-Type": "application/json", **(headers or {})}
        with self._lock:
            self.faults.extend(Fault(status, body, heads, path) for _ in range(times))

    def _answer(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        if self.latency:
            import time

            time.sleep(self.latency)
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.path in (None, request.path)), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            return fault.status, fault.body, fault.headers
        if self.redirect_to:
            query = "&".join(f"{k}={v}" for k, values in request.query.items() for v in values)
            target = f"{self.redirect_to}{request.path}" + (f"?{query}" if query else "")
            return 307, b"", {"Location": target}
        handler = self._routes.get((request.method, request.path)) or next(
            (h for m, prefix, h in self._prefixes
             if m == request.method and request.path.startswith(prefix)), None)
        if handler is None:
            return 404, json.dumps({"errorMessages": ["Not found"]}).encode(), {
                "Content-Type": "application/json"}
        answer = handler(request)
        if answer.body is None:
            return answer.status, b"", answer.headers
        return answer.status, json.dumps(answer.body).encode(), {
            "Content-Type": "application/json", **answer.headers}
