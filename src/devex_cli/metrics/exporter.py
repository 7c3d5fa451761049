"""`devex collect --serve`: an exporter with `/metrics` and `/healthz`, collecting in the
background every interval.

A scrape reads whichever snapshot is current: a new snapshot replaces the old one in a single
assignment, so a scrape never sees half of one. When a collection fails, the last good snapshot
stays, with the failing source's `devex_source_up` at 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from devex_cli.dora.model import Snapshot
from devex_cli.errors import DevexError, UpstreamError
from devex_cli.metrics.exposition import SnapshotCollector
from devex_cli.textsafe import safe

log = logging.getLogger("devex.exporter")


class Exporter:
    """Runs `collect_once` every `interval` seconds and serves what it last produced."""

    def __init__(self, collect_once: Callable[[], Snapshot], *, interval: float) -> None:
        self._collect_once = collect_once
        self._interval = interval
        self._stop = threading.Event()
        self.snapshot: Snapshot | None = None
        self.collections = 0
        self.last_duration = 0.0
        self.last_finished = 0.0
        self.last_success = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(lambda: self.snapshot, health=self._health))

    def _health(self) -> dict[str, float]:
        return {
            "devex_collection_duration_seconds": self.last_duration,
            "devex_last_collection_timestamp_seconds": self.last_finished,
            "devex_last_collection_success": 1.0 if self.last_success else 0.0,
            "devex_collections": float(self.collections),
        }

    def collect(self) -> None:
        """One collection; a failure keeps the last snapshot and marks the source down."""
        started = time.monotonic()
        try:
            snapshot = self._collect_once()
        except DevexError as exc:
            log.warning("collection failed, serving the last good figures: %s", exc)
            self.last_success = False
            if self.snapshot is not None:
                source = exc.system if isinstance(exc, UpstreamError) else "gitops"
                source = "gitops" if source == "git" else source
                self.snapshot = replace(self.snapshot,
                                        sources={**self.snapshot.sources, source: False})
        except Exception:  # a bug must not kill the collector thread and freeze /metrics
            log.exception("collection failed unexpectedly; serving the last good figures")
            self.last_success = False
        else:
            self.snapshot = snapshot
            self.last_success = True
        self.collections += 1
        self.last_duration = time.monotonic() - started
        self.last_finished = time.time()

    def run_collector(self) -> None:
        while not self._stop.is_set():
            self.collect()
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()

    def metrics(self) -> bytes:
        return generate_latest(self.registry)


def serve(exporter: Exporter, host: str, port: int,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; collection runs in a background thread."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), safe(format % args))  # the request line

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, exporter.metrics(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = exporter.snapshot is not None
                body = b"ok\n" if ok else b"no collection has succeeded yet\n"
                self._send(200 if ok else 503, body, "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n",
                           "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    worker = threading.Thread(target=exporter.run_collector, name="devex-collector", daemon=True)
    worker.start()
    bound_host, bound_port = server.server_address[:2]
    if isinstance(bound_host, bytes):
        bound_host = bound_host.decode()
    if ready is not None:
        ready(f"http://{bound_host}:{bound_port}")
    try:
        server.serve_forever()
    finally:
        exporter.stop()
        server.server_close()
