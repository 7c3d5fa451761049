from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from devex_cli.config import HttpSettings
from devex_cli.errors import UpstreamError, UpstreamHTTPError
from devex_cli.http import ApiClient, BearerAuth, error_summary, parse_retry_after
from devex_cli.masking import mask

FAST = HttpSettings(timeout=2, retries=3, backoff=0.0, max_retry_after=0.05)


def client(**kw: object) -> ApiClient:
    return ApiClient("Jira", "https://jira.example.com", settings=FAST, **kw)  # type: ignore[arg-type]


def test_retries_5xx_then_succeeds(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_response(status_code=502)
    httpx_mock.add_response(json={"ok": True})
    with client() as api:
        assert api.get_json("/x") == {"ok": True}
        assert api.requests_made == 3


def test_429_waits_for_retry_after_capped(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "3600"})
    httpx_mock.add_response(json=[])
    with client() as api:
        assert api.get_json("/x") == []  # waited the 0.05 s cap, not an hour


def test_gives_up_with_the_status_and_jira_message(httpx_mock: HTTPXMock) -> None:
    for _ in range(4):
        httpx_mock.add_response(status_code=503, json={"errorMessages": ["Maintenance"]})
    with client() as api, pytest.raises(UpstreamHTTPError) as raised:
        api.get_json("/x")
    assert raised.value.exit_code == 3
    assert "503" in str(raised.value) and "Maintenance" in str(raised.value)
    assert "after 4 attempts" in str(raised.value)


def test_client_errors_are_not_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=401, json={"errorMessages": ["Not authenticated"]})
    with client(auth_hint="check JIRA_API_TOKEN") as api, pytest.raises(UpstreamHTTPError) as e:
        api.get_json("/x")
    assert e.value.status == 401
    assert api.requests_made == 1
    assert "check JIRA_API_TOKEN" in str(e.value)


def test_connection_errors_are_retried_then_reported(httpx_mock: HTTPXMock) -> None:
    for _ in range(4):
        httpx_mock.add_exception(httpx.ConnectError("Connection refused"))
    with client() as api, pytest.raises(UpstreamError, match="cannot reach"):
        api.get_json("/x")


def test_malformed_json_is_an_upstream_error(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(text="<html>login</html>", headers={"content-type": "text/html"})
    with client() as api, pytest.raises(UpstreamError, match="not JSON"):
        api.get_json("/x")


def test_tokens_never_appear_in_errors(httpx_mock: HTTPXMock) -> None:
    token = "canary-token-5f1e2d"
    httpx_mock.add_response(status_code=400, json={"errorMessages": [f"bad token {token}"]})
    with client(auth=BearerAuth(token)) as api, pytest.raises(UpstreamHTTPError) as raised:
        api.get_json("/x")
    assert token not in str(raised.value)
    assert httpx_mock.get_requests()[0].headers["Authorization"] == f"Bearer {token}"


def test_credentials_in_urls_are_masked() -> None:
    assert mask("cloning https://user:pw123456@git.example/x.git") == \
        "cloning https://****@git.example/x.git"


@pytest.mark.parametrize(("value", "seconds"), [
    ("5", 5.0), ("0", 0.0), ("", None), (None, None), ("soon", None),
    ("Wed, 25 Nov 2026 12:00:10 GMT", 10.0),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == seconds


def test_error_summary_shapes() -> None:
    assert error_summary({"errorMessages": ["a", "b"]}) == "a; b"
    assert error_summary({"errorMessages": [], "errors": {"jql": "bad"}}) == "jql: bad"
    assert error_summary({"message": "permission denied", "code": 7}) == "permission denied"
    assert error_summary(["x"]) == ""


def test_plain_http_systems_load_no_trust_store_and_verify_any_tls() -> None:
    """An http:// system (an in-cluster Pushgateway) skips loading the trust store; should it
    redirect to https, the empty store fails verification instead of trusting anything."""
    import ssl

    from devex_cli.http import _tls

    plain, secure = _tls(plain_http=True), _tls(plain_http=False)
    assert plain is not secure
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert secure.verify_mode == ssl.CERT_REQUIRED and secure.check_hostname


class RawServer:
    """A loopback server that answers every connection with `script(connection)`: for faults
    no HTTP library would produce (headers trickled a byte at a time, an endless body)."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
            with contextlib.suppress(OSError):  # the client gave up: what the tests want
                self.script(connection)

    def send(self, connection: socket.socket, data: bytes) -> None:
        connection.sendall(data)
        self.sent += len(data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    started: list[RawServer] = []

    def start(script: Callable[[socket.socket], None]) -> RawServer:
        started.append(RawServer(script))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.mark.httpx_mock(should_mock=lambda request: False)
def test_headers_trickled_a_byte_at_a_time_are_timed_out(raw_server: Any) -> None:
    """Each header byte comes well within the read timeout, the headers never end: the deadline
    of the whole answer, started when the request is sent, ends it (the server gives up after
    8 s, so a client without the deadline fails this test instead of hanging it)."""

    def trickle(connection: socket.socket) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(80):
            server.send(connection, b"a")
            time.sleep(0.1)

    server = raw_server(trickle)
    settings = HttpSettings(timeout=0.5, retries=1, backoff=0.01, max_retry_after=0.05)
    started = time.monotonic()
    with ApiClient("Jira", server.url, settings=settings) as api, \
            pytest.raises(UpstreamError, match=r"did not answer within 0\.5s after 2 attempts"):
        api.get_json("/rest/api/3/search/jql")
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, elapsed  # two attempts of at most 2 x 0.5 s each, and some slack


@pytest.mark.httpx_mock(should_mock=lambda request: False)
def test_an_endless_answer_stops_at_the_size_cap(raw_server: Any) -> None:
    """No Content-Length, a body that never ends: devex stops reading at the cap (memory stays
    bounded), and says so naming the setting."""

    def endless(connection: socket.socket) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\n\r\n[")
        while server.sent < 256 << 20:
            server.send(connection, b'"x",' * 16384)

    server = raw_server(endless)
    settings = HttpSettings(timeout=5, retries=3, backoff=0.01, max_response_bytes=1 << 20)
    with ApiClient("Jira", server.url, settings=settings) as api, \
            pytest.raises(UpstreamError) as raised:
        api.get_json("/x")
    assert str(raised.value).startswith(
        "Jira: answer larger than 1 MB (http.max_response_bytes); stopped reading")
    assert raised.value.exit_code == 3
    assert api.requests_made == 1  # too large stays too large: not retried
    assert server.sent < 64 << 20  # stopped reading long before the 256 MB the server had


def test_a_declared_length_past_the_cap_is_refused_before_reading(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(content=b"[" + b"1," * (3 << 20) + b"1]")
    settings = HttpSettings(timeout=2, retries=0, max_response_bytes=5 << 20)
    with ApiClient("Bitbucket", "https://api.example", settings=settings) as api, \
            pytest.raises(UpstreamError, match=r"^Bitbucket: answer larger than 5 MB"):
        api.get_json("/x")


def gzip_answer(body: bytes) -> Callable[[socket.socket], None]:
    import gzip

    packed = gzip.compress(body)

    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                           % len(packed) + packed)
    return answer


@pytest.mark.httpx_mock(should_mock=lambda request: False)
def test_the_cap_counts_decoded_bytes(raw_server: Any) -> None:
    """A gzip bomb: about 10 KB on the wire, 10 MB decoded."""
    server = raw_server(gzip_answer(b" " * (10 << 20)))
    settings = HttpSettings(timeout=2, retries=0, max_response_bytes=1 << 20)
    with ApiClient("Jira", server.url, settings=settings) as api, \
            pytest.raises(UpstreamError, match="answer larger than 1 MB"):
        api.get_json("/x")


@pytest.mark.httpx_mock(should_mock=lambda request: False)
def test_answers_under_the_cap_are_whole_and_decoded(raw_server: Any) -> None:
    body = b'{"values": [' + b",".join(b"%d" % n for n in range(50000)) + b"]}"
    server = raw_server(gzip_answer(body))
    settings = HttpSettings(timeout=2, retries=0, max_response_bytes=len(body))
    with ApiClient("Jira", server.url, settings=settings) as api:
        response = api.request("GET", "/x")
        assert "content-encoding" not in response.headers  # decoded: not to be decoded again
        assert api.decode(response)["values"][-1] == 49999


def test_basic_credentials_are_masked_in_their_base64_form_too(httpx_mock: HTTPXMock) -> None:
    """An upstream echoing the Authorization header back in an error body."""
    import base64

    from devex_cli.http import basic_auth

    token = "canary-basic-9d8e7f"
    encoded = base64.b64encode(f"ci@example.com:{token}".encode()).decode()
    httpx_mock.add_response(status_code=400, json={
        "errorMessages": [f"bad header Authorization: Basic {encoded}"]})
    with client(auth=basic_auth("ci@example.com", token)) as api, \
            pytest.raises(UpstreamHTTPError) as raised:
        api.get_json("/x")
    sent = httpx_mock.get_requests()[0].headers["Authorization"]
    assert sent == f"Basic {encoded}"
    assert encoded.rstrip("=") not in str(raised.value) and token not in str(raised.value)
    assert "Basic ****" in str(raised.value)
    assert mask(f"Basic {encoded.rstrip('=')}") == "Basic ****"  # an echo without the padding


def test_each_retry_is_one_line_at_info(httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_exception(httpx.ConnectError("Connection refused"))
    httpx_mock.add_response(json={"ok": True})
    # (a command run earlier in this process set devex's logger to its own handler alone, and
    # the log capture of earlier tests may have left theirs on it: records reach caplog once)
    monkeypatch.setattr(logging.getLogger("devex"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("devex"), "handlers", [])
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="devex"), \
            client() as api:
        assert api.get_json("/x") == {"ok": True}
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.INFO, logging.INFO]
    assert [r.name for r in caplog.records if r.name.startswith("stamina")] == []
    first, second = (r.getMessage() for r in retries)
    assert re.fullmatch(r"Jira: HTTP 503, retrying in \d+\.\d s \(attempt 2 of 4\)", first)
    assert re.fullmatch(r"Jira: Connection refused, retrying in \d+\.\d s \(attempt 3 of 4\)",
                        second)


def test_proxies_from_the_environment_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a corporate proxy (HTTP_PROXY/HTTPS_PROXY), every request goes through it."""
    from tests.fakes.server import Answer, FakeServer

    proxy = FakeServer()
    proxy.route("GET", "/x", lambda request: Answer(200, {"through": "proxy"}))
    proxy.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with ApiClient("Jira", "http://jira.acme.example", settings=HttpSettings(
                timeout=5, retries=0, backoff=0)) as api:
            assert api.get_json("/x") == {"through": "proxy"}
        (seen,) = proxy.requests
        assert seen.headers["host"] == "jira.acme.example"  # asked of the proxy, for the host
    finally:
        proxy.stop()
