"""The one HTTP client every outside system is reached through.

Timeouts; retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx,
honouring `Retry-After` (capped); authentication; secrets masked in every message it raises.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
import stamina

from devex_cli import __version__
from devex_cli.config import HttpSettings
from devex_cli.errors import UpstreamError, UpstreamHTTPError
from devex_cli.masking import mask, mask_url, register_secret

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
    register_secret(secret)
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
        self._client = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            headers={"User-Agent": f"devex/{__version__}", "Accept": "application/json",
                     **(headers or {})},
            transport=transport,
            follow_redirects=True,
            event_hooks={"response": [_refuse_cross_origin_redirect]},
            verify=_tls(plain_http=self.base_url.lower().startswith("http://")),
        )

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
        """Send and read the whole answer within twice `http.timeout`: httpx's read timeout is
        per chunk, so a server trickling a byte at a time would otherwise hold a pipeline for
        hours."""
        deadline = time.monotonic() + 2 * self._settings.timeout
        streamed = self._client.send(request, stream=True)
        try:
            chunks = []
            for chunk in streamed.iter_raw():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer took too long to arrive",
                                            request=request)
        finally:
            streamed.close()
        return httpx.Response(streamed.status_code, headers=streamed.headers,
                              content=b"".join(chunks), request=request,
                              extensions=streamed.extensions)

    def _should_retry(self, exc: Exception) -> bool | float:
        if isinstance(exc, _RetryableStatus):
            log.info("%s answered %d; retrying", self.system, exc.response.status_code)
            if exc.retry_after is not None:
                return min(exc.retry_after, self._settings.max_retry_after)
            return True
        if isinstance(exc, httpx.TransportError):
            log.info("%s: %s; retrying", self.system, type(exc).__name__)
            return True
        return False

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
