"""`devex collect --serve`: an exporter with `/metrics` and `/healthz`, collecting in the
background every interval.

A scrape reads whichever snapshot is current: a new snapshot replaces the old one in a single
assignment, so a scrape never sees half of one. When a collection fails, the last good snapshot
stays, with the failing source's `devex_source_up` at 0.

The server is meant to face a Prometheus, a kubelet probe and the odd curl, not the internet, but
it must not fall over when a client misbehaves: a silent connection is dropped after
`IDLE_TIMEOUT`, at most `MAX_CONNECTIONS` are answered at once, and a client that goes away
mid-answer is not an error. SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from devex_cli.dora.model import Snapshot
from devex_cli.errors import DevexError, UpstreamError, UsageError
from devex_cli.sources.base import SourceHealth
from devex_cli.textsafe import safe
from devex_cli.views.prometheus import SnapshotCollector

log = logging.getLogger("devex.exporter")

IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent (idle, or a slowloris) before it is dropped
MAX_CONNECTIONS = 64  # connections answered at once; beyond, new ones are closed unanswered
STOP_GRACE = 2.0  # seconds an answer, or a collection, in progress gets to finish on stop
STOP_POLL = 0.2  # seconds between two looks for a stop signal while no request comes
_ALLOW = "GET, HEAD"
_TEXT = "text/plain; charset=utf-8"
_DRAIN_LIMIT = 64 * 1024  # a refused request's body read so the client sees the answer, not a reset


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
        self.last_failure: DevexError | None = None  # why the last collection failed
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
            # a collection cut short by stopping (a demo's folder removed under it) is no news
            log.log(logging.DEBUG if self._stop.is_set() else logging.WARNING,
                    "collection failed, serving the last good figures: %s", exc)
            self.last_success = False
            self.last_failure = exc
            if self.snapshot is not None:
                source = exc.system if isinstance(exc, UpstreamError) else "gitops"
                source = "gitops" if source == "git" else source
                health = SourceHealth(self.snapshot.sources)
                health.failed(source, str(exc))
                self.snapshot = replace(self.snapshot, sources=dict(health))
        except Exception:  # a bug must not kill the collector thread and freeze /metrics
            log.exception("collection failed unexpectedly; serving the last good figures")
            self.last_success = False
        else:
            self.snapshot = snapshot
            self.last_success = True
            self.last_failure = None
        self.collections += 1
        self.last_duration = time.monotonic() - started
        self.last_finished = time.time()

    def run_collector(self) -> None:
        """Collect every interval until stopped; a collection already made counts as the first."""
        if self.collections == 0:
            self.collect()
        while not self._stop.wait(self._interval):
            self.collect()

    def stop(self) -> None:
        self._stop.set()

    def metrics(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer

    def version_string(self) -> str:
        return "devex"  # not the Python version the default tells every client

    def setup(self) -> None:
        self.request.settimeout(self.server.idle_timeout)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # request lines only at -v
            # the client's text: escaped, so a log line cannot be forged or a terminal driven
            log.debug("%s %s", self.client_address[0], safe(format % args))

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse_method(self) -> None:
        with self.server.answering():
            length = self.headers.get("Content-Length", "")
            if length.isdigit() and int(length) <= _DRAIN_LIMIT:
                self.rfile.read(int(length))
            self._send(405, b"method not allowed: use GET or HEAD\n", _TEXT, body=True,
                       allow=_ALLOW)

    # Methods HTTP defines answer 405; any other word keeps the standard library's 501.
    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def _answer(self, *, body: bool) -> None:
        with self.server.answering():
            exporter = self.server.exporter
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, exporter.metrics(), CONTENT_TYPE_LATEST, body=body)
            elif path == "/healthz":
                ok = exporter.snapshot is not None
                failure = exporter.last_failure
                why = f": {failure}" if failure else ""
                message = b"ok\n" if ok else (
                    f"no collection has succeeded yet{why}\n".encode())
                self._send(200 if ok else 503, message, _TEXT, body=body)
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", _TEXT, body=body)

    def _send(self, status: int, content: bytes, content_type: str, *, body: bool,
              allow: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))  # a HEAD's too: what GET would send
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if body:
            self.wfile.write(content)


class ExporterServer(ThreadingHTTPServer):
    """The exporter's HTTP server, listening from construction on; use as a context manager.

    Raises UsageError when it cannot listen at `host`:`port` (in use, not an address of this
    machine, not allowed, a host that does not resolve).
    """

    daemon_threads = True  # a connection still open never holds up the exit
    # The listen backlog (5 by default): a burst beyond it waits in the kernel, unanswered, for
    # a retransmission, where it should reach MAX_CONNECTIONS and be answered or closed at once.
    request_queue_size = 128

    def __init__(self, exporter: Exporter, host: str, port: int, *,
                 idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.exporter = exporter
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._answers = 0
        self._answers_changed = threading.Condition()
        self.stop_signal: int | None = None  # set by a signal handler: nothing else is safe there
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise UsageError(f"--listen host {host!r} cannot be resolved: {exc.strerror}",
                             hint="pass --listen HOST:PORT with an address of this machine, "
                                  "e.g. 127.0.0.1:9464") from None
        family, _, _, _, address = found[0]
        self.address_family = family  # read by the constructor: IPv6 hosts work too
        try:
            super().__init__(cast("tuple[str, int] | tuple[str, int, int, int]", address),
                             _Handler)
        except OSError as exc:
            raise _listen_error(host, port, exc) from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("closing a connection from %s: %d already open",
                      client_address[0], self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except RuntimeError:  # no thread could be started: it will not release the slot
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def service_actions(self) -> None:
        # Called by serve_forever between requests and at least every poll interval: a clean
        # point to leave it, unlike anywhere a signal handler raising would interrupt.
        if self.stop_signal is not None:
            raise _Stopped

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            # The client went away or stalled mid-request (a probe that only connects, a
            # scrape timed out on its side): its business, not a fault of the exporter.
            log.debug("connection from %s ended early: %s", client_address[0], error)
            return
        log.error("answering %s failed unexpectedly: %s: %s (-v shows where)",
                  client_address[0], type(error).__name__, error,
                  exc_info=log.isEnabledFor(logging.DEBUG))

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Marks an answer in progress, which stopping waits for."""
        with self._answers_changed:
            self._answers += 1
        try:
            yield
        finally:
            with self._answers_changed:
                self._answers -= 1
                self._answers_changed.notify_all()

    def wait_for_answers(self, timeout: float) -> bool:
        """Whether the answers in progress finished within `timeout` seconds."""
        with self._answers_changed:
            return self._answers_changed.wait_for(lambda: self._answers == 0, timeout)


def _listen_error(host: str, port: int, exc: OSError) -> UsageError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"{where} is already in use",
                          hint="pass --listen HOST:PORT with a free port, or stop what listens there")
    if exc.errno == errno.EACCES:
        return UsageError(f"not allowed to listen on {where}",
                          hint="ports below 1024 need privileges: pass --listen HOST:PORT "
                               "with a higher port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"cannot listen on {where}: {host} is not an address of this machine",
                          hint="pass --listen HOST:PORT with one of its addresses, or 0.0.0.0")
    return UsageError(f"cannot listen on {where}: {exc.strerror or exc}",
                      hint="pass --listen HOST:PORT")


class _Stopped(Exception):
    """Leaves serve_forever once a stop signal arrived."""


@contextmanager
def _stopped_by_signals(server: ExporterServer) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT ask `server` to stop instead of raising wherever the
    main thread happens to be (an exception raised inside Thread.start() or a lock's wait
    leaves the server's own accounting wrong). A SIGINT ignored from the start (a background
    job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: object) -> None:
        server.stop_signal = signum

    signums = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signums.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, request_stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(server: ExporterServer, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, collecting in a background thread; then return.

    A stop is noticed within `STOP_POLL` seconds. It closes the listening socket and gives an
    answer or a collection in progress `STOP_GRACE` seconds to finish; what is still running
    then ends with the process.
    """
    exporter = server.exporter
    worker = threading.Thread(target=exporter.run_collector, name="devex-collector", daemon=True)
    try:
        with _stopped_by_signals(server):
            worker.start()
            if ready is not None:
                ready(server.url)
            server.serve_forever(poll_interval=STOP_POLL)
    except _Stopped:  # SIGTERM or SIGINT: the way an exporter is meant to stop
        log.debug("stopping on signal %s", server.stop_signal)
    finally:
        exporter.stop()
        server.server_close()
        deadline = time.monotonic() + STOP_GRACE
        server.wait_for_answers(STOP_GRACE)
        if worker.is_alive():
            worker.join(max(0.0, deadline - time.monotonic()))
