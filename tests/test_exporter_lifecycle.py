"""The exporter's life as a process and as a server facing misbehaving clients: where it listens
(and the one-line errors when it cannot), HEAD and other methods, clients that vanish or stay
silent, and a clean stop on SIGTERM or Ctrl-C for `collect --serve` and `demo --serve`."""

from __future__ import annotations

import errno
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from devex_cli.dora.model import Snapshot
from devex_cli.metrics.exporter import Exporter, ExporterServer
from tests.services import free_port, get, wait_until_up
from tests.test_demo_lifecycle import (
    WAIT,
    Devex,
    default_sigint,
    devex_argv,
    one_line_error,
    until,
)
from tests.worlds import World


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    stderr: Path

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")


@contextmanager
def serving(argv: list[str], tmp_path: Path, env: dict[str, str] | None = None,
            name: str = "devex") -> Iterator[Served]:
    """`argv` (ending in `--listen`'s value) running until /healthz answers 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        # SIGINT as on a terminal, even when the tests run where it is ignored (a background job)
        process = subprocess.Popen([*argv, f"127.0.0.1:{port}"], stdout=stdout, stderr=stderr,
                                   env=env, preexec_fn=default_sigint)
        try:
            wait_until_up(f"{url}/healthz", process, timeout=60)
            yield Served(process, url, port, err)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def stop(served: Served, signum: int) -> tuple[int, float]:
    """Sends `signum`; the exit code and the seconds it took."""
    started = time.monotonic()
    served.process.send_signal(signum)
    code = served.process.wait(timeout=WAIT)
    return code, time.monotonic() - started


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("lifecycle-world"))


# --- where it listens -----------------------------------------------------------------------


def test_collect_serve_on_a_port_in_use_is_a_usage_error(devex: Devex, world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = devex("collect", "--offline", "--serve", "--listen", f"127.0.0.1:{port}",
                       config=str(world.config))
    assert result.code == 2
    assert one_line_error(result) == (
        f"devex: error: 127.0.0.1:{port} is already in use (pass --listen HOST:PORT with a "
        "free port, or stop what listens there)")


def test_demo_serve_on_a_port_in_use_is_a_usage_error_and_removes_its_folder(
    devex: Devex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = devex("demo", "--serve", "--listen", f"127.0.0.1:{port}")
    assert result.code == 2
    assert f"127.0.0.1:{port} is already in use" in one_line_error(result)
    assert list(temporary.iterdir()) == []


def test_listen_on_an_address_not_of_this_machine(devex: Devex, world: World) -> None:
    result = devex("collect", "--offline", "--serve", "--listen", "192.0.2.1:9464",  # TEST-NET-1
                   config=str(world.config))
    assert result.code == 2
    assert "192.0.2.1 is not an address of this machine" in one_line_error(result)


def test_listen_on_a_host_that_does_not_resolve(devex: Devex, world: World,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolution is faked: a real lookup would depend on the machine's DNS.
    def no_such_host(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    result = devex("collect", "--offline", "--serve", "--listen", "metrics.nowhere:9464",
                   config=str(world.config))
    assert result.code == 2
    assert one_line_error(result).startswith(
        "devex: error: --listen host 'metrics.nowhere' cannot be resolved: Name or service not "
        "known")


def test_listen_without_permission(devex: Devex, world: World,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Faked: the tests may run as root, who may listen anywhere.
    def denied(self: ExporterServer) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ExporterServer, "server_bind", denied)
    result = devex("collect", "--offline", "--serve", "--listen", "127.0.0.1:80",
                   config=str(world.config))
    assert result.code == 2
    assert "not allowed to listen on 127.0.0.1:80 (ports below 1024" in one_line_error(result)


# --- answers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `devex -v collect --serve` for the tests of what it answers."""
    folder = tmp_path_factory.mktemp("served")
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
    argv = devex_argv("-v", "--config", str(world.config), "collect", "--offline", "--serve",
                      "--interval", "1h", "--listen")
    with serving(argv, folder, env) as running:
        yield running
        running.process.terminate()
        running.process.wait(timeout=WAIT)


def request(served: Served, method: str, path: str, body: bytes | None = None
            ) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=WAIT)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def test_head_answers_like_get_without_a_body(served: Served) -> None:
    for path in ("/metrics", "/healthz"):
        got, got_body = request(served, "GET", path)
        head, head_body = request(served, "HEAD", path)
        assert (head.status, head_body) == (200, b"")
        assert head.getheader("Content-Type") == got.getheader("Content-Type")
        length = int(head.getheader("Content-Length") or -1)
        # /metrics's length may move between two scrapes (ages are computed when scraped)
        assert length == len(got_body) if path == "/healthz" else length > 0
    missing, missing_body = request(served, "HEAD", "/nope")
    assert (missing.status, missing_body) == (404, b"")


def test_other_methods_are_not_allowed(served: Served) -> None:
    for method, body in (("POST", b"x" * 1000), ("PUT", b"{}"), ("DELETE", None),
                         ("OPTIONS", None)):
        response, _ = request(served, method, "/metrics", body)
        assert response.status == 405, method
        assert response.getheader("Allow") == "GET, HEAD"
    assert request(served, "GET", "/nope")[0].status == 404
    assert request(served, "GET", "/metrics?debug=1")[0].status == 200


def test_clients_that_go_away_early_are_no_error(served: Served) -> None:
    before = served.err().count("ended early")
    # whether a reset lands while the answer is written is a race: enough tries that one does,
    # even on a loaded machine
    for _ in range(40):
        with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as client:
            client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            # close with a reset (SO_LINGER 0), before the answer is read
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
    for _ in range(5):  # and a plain close before reading
        with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as client:
            client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    # At -v a reset leaves a debug line, where the standard library prints a traceback.
    assert until(lambda: served.err().count("ended early") > before
                 or "Traceback" in served.err()), served.err()
    assert "Traceback" not in served.err()
    assert get(f"{served.url}/healthz")[0] == 200


def test_request_lines_are_logged_escaped_and_only_at_debug(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=WAIT) as client:
        client.sendall(b"GET /\x1b[31mred\x07 HTTP/1.0\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.0 404")
    assert until(lambda: "red" in served.err())
    assert "\x1b" not in served.err() and "\x07" not in served.err()
    assert "devex: debug: 127.0.0.1 \"GET /\\x1b[31mred\\x07 HTTP/1.0\" 404" in served.err()


# --- idle and too many connections (in process, with short limits) ---------------------------


def handler_threads(server: object = None) -> int:
    """Connection threads alive (of `server` alone when given: one of an earlier test may still
    be ending)."""
    return sum(1 for t in threading.enumerate() if t.name.endswith("(process_request_thread)")
               and (server is None
                    or getattr(getattr(t, "_target", None), "__self__", None) is server))


def never_collected() -> Snapshot:
    raise AssertionError("these tests collect nothing")


@contextmanager
def exporter_server(idle_timeout: float, max_connections: int = 64) -> Iterator[ExporterServer]:
    server = ExporterServer(Exporter(never_collected, interval=3600), "127.0.0.1", 0,
                            idle_timeout=idle_timeout, max_connections=max_connections)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_by_server(client: socket.socket) -> bool:
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def test_idle_and_slow_connections_are_dropped() -> None:
    with exporter_server(idle_timeout=2.0) as server:
        port = server.server_address[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                   for _ in range(30)]
        clients[0].sendall(b"GET /metr")  # a slowloris: half a request line, then nothing
        clients[1].sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n")  # headers never finished
        try:
            assert until(lambda: handler_threads(server) > 0)  # they are being held...
            assert all(closed_by_server(c) for c in clients)  # ...and dropped, each in time
            assert until(lambda: handler_threads(server) == 0)
        finally:
            for client in clients:
                client.close()
        assert get(f"{server.url}/healthz")[0] == 503  # still answering: nothing collected


def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    with exporter_server(idle_timeout=WAIT * 2, max_connections=4) as server:
        port = server.server_address[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                   for _ in range(10)]
        try:
            closed: set[int] = set()
            for client in clients:
                client.setblocking(False)

            def six_closed() -> bool:
                for index, client in enumerate(clients):
                    try:
                        if client.recv(1) == b"":
                            closed.add(index)
                    except BlockingIOError:
                        pass
                    except ConnectionResetError:
                        closed.add(index)
                return len(closed) >= 6

            assert until(six_closed)
            # the four held ones stay open (their idle timeout is a minute), one thread each
            assert len(closed) == 6 and handler_threads(server) == 4
        finally:
            for client in clients:
                client.close()
        assert until(lambda: handler_threads(server) == 0)  # their clients left: slots free
        assert get(f"{server.url}/healthz")[0] == 503


# --- stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_collect_serve_stops_cleanly(world: World, tmp_path: Path, signum: int) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = devex_argv("--config", str(world.config), "collect", "--offline", "--serve",
                      "--interval", "1h", "--listen")
    with serving(argv, tmp_path, env) as running:
        # a path the client chose, which the default log level never prints
        with socket.create_connection(("127.0.0.1", running.port), timeout=WAIT) as client:
            client.sendall(b"GET /secret-looking-path HTTP/1.0\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.0 404")
        idle = socket.create_connection(("127.0.0.1", running.port), timeout=WAIT)  # stays open
        code, seconds = stop(running, signum)
        idle.close()
    assert code == 0, running.err()
    assert seconds < 10
    lines = running.err().splitlines()
    assert len(lines) == 1 and lines[0].startswith("devex: serving http://127.0.0.1:")


def test_demo_serve_stops_cleanly_on_sigterm_and_removes_its_folder(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with serving(devex_argv("demo", "--serve", "--listen"), tmp_path, env) as running:
        made = list(temporary.iterdir())
        assert [p.name[:11] for p in made] == ["devex-demo-"]
        assert (made[0] / "org" / "gitops" / ".git").is_dir()
        assert get(f"{running.url}/metrics")[0] == 200
        code, seconds = stop(running, signal.SIGTERM)
    assert code == 0, running.err()
    assert seconds < 10
    assert list(temporary.iterdir()) == []
    assert "Traceback" not in running.err()


def test_demo_keep_serve_keeps_its_folder_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    keep = tmp_path / "org"
    argv = devex_argv("demo", "--keep", str(keep), "--serve", "--listen")
    with serving(argv, tmp_path, env) as running:
        code, _ = stop(running, signal.SIGTERM)
    assert code == 0, running.err()
    assert (keep / "gitops" / ".git").is_dir() and (keep / "devex.toml").is_file()
