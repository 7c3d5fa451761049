"""The one HTTP client every outside system is reached through.

Timeouts (per read, and a deadline on the whole answer, headers included); a cap on an answer's
size; retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx,
honouring `Retry-After` (capped), each retry one line at -v; authentication; secrets masked in
every message it raises.
"""

from __future__ import annotations

import contextvars
import email.utils
import functools
import json
import logging
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpcore
import httpx
import stamina
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from devex_cli import __version__
from devex_cli.config import HttpSettings
from devex_cli.errors import UpstreamError, UpstreamHTTPError
from devex_cli.masking import mask, mask_url, register_basic_auth, register_secret

log = logging.getLogger("devex.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Query parameters: a mapping, or pairs where a name repeats (`exclude=a&exclude=b`).
Params = Mapping[str, Any] | Sequence[tuple[str, Any]]


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


class _CrossOriginRedirect(Exception):
    """A redirect to another host: httpx would follow it without the credentials, and an
    anonymous answer ("no such issue") must never be read as the truth."""

    def __init__(self, target: httpx.URL) -> None:
        super().__init__(str(target))
        self.target = target


def _refuse_cross_origin_redirect(response: httpx.Response) -> None:
    if not response.has_redirect_location:
        return
    source = response.request.url
    target = source.join(response.headers["Location"])
    upgrade = (source.scheme, target.scheme) == ("http", "https") and target.port in (None, 443)
    same = target.scheme == source.scheme and target.port == source.port
    if target.host != source.host or not (same or upgrade):
        raise _CrossOriginRedirect(target)


def basic_auth(user: str, secret: str) -> httpx.Auth:
    register_basic_auth(user, secret)
    return httpx.BasicAuth(user, secret)


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>`, as Argo CD, Jira DC and Bitbucket access tokens use."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = self._header
        yield request


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_summary(body: object) -> str:
    """The human part of an error body: Jira's errorMessages, Argo CD's message, or nothing."""
    if isinstance(body, Mapping):
        messages = body.get("errorMessages")
        if isinstance(messages, list) and messages:
            return "; ".join(str(m) for m in messages[:3])
        errors = body.get("errors")
        if isinstance(errors, Mapping) and errors:
            return "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3])
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"])
    return ""


# The moment the answer being read must be complete, per thread (sync httpx reads in the thread
# that sends). Every socket read and write is bounded by it, so a server trickling its headers
# or body a byte at a time cannot outlast it, whatever httpx's per-read timeout says.
_deadline = threading.local()


def _time_left(timeout: float | None) -> float | None:
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the answer took too long to arrive")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _time_left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _time_left(timeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None,
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _time_left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _arm_deadline(transport: object) -> None:
    """Put the deadline under a transport's connections. httpx offers no total timeout and no
    public way to give its transport a network backend (encode/httpx#1450), so this swaps the
    backend of httpcore's pool; a transport without one (a test double) keeps the body check in
    `_read_with_deadline` alone."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


# (system, attempts) of the request being retried in this thread or task, for the retry line.
_retrying: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "devex_http_retrying", default=None)


def _log_retry(details: RetryDetails) -> None:
    """One readable line per retry at -v. Replaces stamina's own hooks, which log
    `stamina.retry_scheduled` at warning (printed even with -q) and count retries in the default
    Prometheus registry."""
    current = _retrying.get()
    if current is None:
        return
    system, attempts = current
    cause = details.caused_by
    if isinstance(cause, _RetryableStatus):
        reason = f"HTTP {cause.response.status_code}"
    elif isinstance(cause, httpx.TimeoutException):
        reason = "no answer in time"
    else:
        reason = str(cause) or type(cause).__name__
    log.info("%s: %s, retrying in %.1f s (attempt %d of %d)", system, reason,
             details.wait_for, details.retry_num + 1, attempts)


set_on_retry_hooks([_log_retry])  # once, when the HTTP stack is first needed


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


@functools.lru_cache(maxsize=2)
def _tls(plain_http: bool = False) -> ssl.SSLContext:
    """One TLS context per process: loading the trust store costs tens of milliseconds, and
    every client (Jira, Argo CD, Bitbucket, Teams) can share it. A plain-http system (an
    in-cluster Pushgateway or Argo CD) gets a context with no trust store at all: nothing to
    load, and a redirect to https fails verification instead of going unchecked."""
    if plain_http:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return ssl.create_default_context()


class ApiClient:
    """A client for one outside system. Thread-safe; use it as a context manager."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        settings: HttpSettings,
        auth: httpx.Auth | None = None,
        auth_hint: str = "",
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        display: str | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self._display = display
        self.requests_made = 0
        self._settings = settings
        self._auth_hint = auth_hint
        tls = _tls(plain_http=self.base_url.lower().startswith("http://"))
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            headers={"User-Agent": f"devex/{__version__}", "Accept": "application/json",
                     **(headers or {})},
            # no transport of ours unless given: httpx then mounts the proxies the environment
            # names (HTTPS_PROXY, NO_PROXY), which a corporate network needs
            transport=transport,
            follow_redirects=True,
            event_hooks={"response": [_refuse_cross_origin_redirect]},
            verify=tls,
        )
        # the direct route and any proxy taken from the environment (HTTPS_PROXY)
        for route in (self._client._transport, *self._client._mounts.values()):
            _arm_deadline(route)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def where(self) -> str:
        return self._display or mask_url(self.base_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request with retries. Returns a 2xx response or raises UpstreamError."""
        retrying = _retrying.set((self.system, self._settings.retries + 1))
        try:
            for attempt in stamina.retry_context(
                on=self._should_retry,
                attempts=self._settings.retries + 1,
                timeout=None,
                wait_initial=self._settings.backoff,
                wait_max=max(self._settings.backoff, 30.0),
                wait_jitter=self._settings.backoff,
            ):
                with attempt:
                    response = self._send(method, path, params, json_body, content, headers)
        except _RetryableStatus as exc:
            raise self._status_error(exc.response, retried=True) from None
        except _CrossOriginRedirect as exc:
            target = exc.target.copy_with(query=None, fragment=None)
            raise UpstreamError(
                self.system,
                f"{self.where} redirected to {mask_url(str(target))}, another host: not "
                "followed, since credentials are never sent there",
                hint="set the URL to the address it redirects to") from None
        except httpx.TimeoutException:
            raise UpstreamError(
                self.system,
                f"{self.where} did not answer within {self._settings.timeout:g}s "
                f"after {self._settings.retries + 1} attempts",
                hint="check that the service is up, or raise http.timeout in devex.toml",
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamError(
                self.system,
                f"cannot reach {self.where}: {mask(str(exc)) or type(exc).__name__}",
                hint="check the URL and the network",
            ) from None
        finally:
            _retrying.reset(retrying)
        if response.status_code >= 400:
            raise self._status_error(response, retried=False)
        return response

    def get_json(self, path: str, *, params: Params | None = None) -> Any:
        return self.decode(self.request("GET", path, params=params))

    def post_json(self, path: str, body: Any) -> Any:
        return self.decode(self.request("POST", path, json_body=body))

    def decode(self, response: httpx.Response) -> Any:
        """The JSON body of a response, or UpstreamError if it is not JSON."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UpstreamError(
                self.system,
                f"{self.where} answered {response.request.url.path} with a body that is not "
                f"JSON ({response.headers.get('content-type', 'no content type')})",
                hint="is the URL that of the API, not of a proxy or login page?",
            ) from None

    def _send(
        self, method: str, path: str, params: Params | None, json_body: Any,
        content: bytes | None = None, headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        self.requests_made += 1
        # (no params at all when there are none: empty ones would drop a `next` URL's query)
        query = None if not params else httpx.QueryParams(
            params if isinstance(params, Mapping) else list(params))
        request = self._client.build_request(method, path, params=query, json=json_body,
                                             content=content, headers=headers)
        response = self._read_with_deadline(request)
        log.debug("%s %s %s -> %d", self.system, method, response.request.url.path,
                  response.status_code)
        if response.status_code in RETRY_STATUSES:
            response.read()
            raise _RetryableStatus(response, parse_retry_after(response.headers.get("Retry-After")))
        return response

    def _read_with_deadline(self, request: httpx.Request) -> httpx.Response:
        """Send and read the whole answer, headers included, within twice `http.timeout` from
        the moment the request is sent: httpx's read timeout is per chunk, so a server trickling
        a byte at a time would otherwise hold a pipeline for hours. The answer is read as a
        stream and given up past `http.max_response_bytes` (decoded), so memory stays bounded
        whatever the server sends. Raises httpx.ReadTimeout, or UpstreamError when too large."""
        cap = self._settings.max_response_bytes
        deadline = time.monotonic() + 2 * self._settings.timeout
        _deadline.at = deadline
        try:
            streamed = self._client.send(request, stream=True)
            try:
                declared = streamed.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise self._too_large(cap)
                body = bytearray()
                for chunk in streamed.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise self._too_large(cap)
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the answer took too long to arrive",
                                                request=request)
            finally:
                streamed.close()
        finally:
            _deadline.at = None
        # The body is decoded already: drop the headers that describe it on the wire.
        headers = [(name, value) for name, value in streamed.headers.multi_items()
                   if name.lower() not in ("content-encoding", "content-length")]
        return httpx.Response(streamed.status_code, headers=headers, content=bytes(body),
                              request=request, extensions=streamed.extensions)

    def _too_large(self, cap: int) -> UpstreamError:
        return UpstreamError(
            self.system,
            f"answer larger than {_size(cap)} (http.max_response_bytes); stopped reading",
            hint="raise http.max_response_bytes in devex.toml if such an answer is expected")

    def _should_retry(self, exc: Exception) -> bool | float:
        if isinstance(exc, _RetryableStatus):
            if exc.retry_after is not None:
                return min(exc.retry_after, self._settings.max_retry_after)
            return True
        return isinstance(exc, httpx.TransportError)

    def _status_error(self, response: httpx.Response, *, retried: bool) -> UpstreamHTTPError:
        try:
            body: object = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        status = response.status_code
        detail = mask(error_summary(body))
        reason = response.reason_phrase or "error"
        message = f"{self.where} answered {status} {reason}"
        if retried:
            message += f" after {self._settings.retries + 1} attempts"
        if detail:
            message += f": {detail}"
        hint = None
        if status in (401, 403):
            hint = self._auth_hint or "check the credentials"
        elif status == 429:
            hint = "rate limited; try again later"
        return UpstreamHTTPError(self.system, message, status=status, body=body, hint=hint)
