"""Pushing metrics to a Prometheus Pushgateway with prometheus-client's push functions (URL
building, label escaping, exposition), sent through devex's shared HTTP client (retries,
Retry-After, credentials masked).

Pushed series never expire: grouping keys are bounded (job, service, environment), never a build
number or a commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from devex_cli.config import Settings
from devex_cli.errors import ConfigError, InputError, UsageError
from devex_cli.http import ApiClient, basic_auth
from devex_cli.masking import mask_url


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def gateway_url(settings: Settings, flag: str | None) -> str:
    url = flag or settings.environ.get("PUSHGATEWAY_URL")
    if not url:
        raise ConfigError("no Pushgateway given", hint="pass --gateway URL or set PUSHGATEWAY_URL")
    full = url if "://" in url else f"http://{url}"
    try:
        parts = urlsplit(full)
        port = parts.port  # a port that is no number raises here
    except ValueError:
        parts, port = None, None
    host = parts.hostname if parts else None
    # A gateway that cannot be an address is a usage error now, not ten seconds of retries. A
    # bare word is taken for a typo unless it says it is an address: a scheme (`http://pushgateway`,
    # a Kubernetes service on port 80), a port, a dot, or localhost.
    bare_word = "://" not in url and "." not in (host or "") and ":" not in (host or "") \
        and host != "localhost" and port is None
    if parts is None or parts.scheme not in ("http", "https") or not host or bare_word:
        raise ConfigError(f"the Pushgateway {mask_url(url)!r} is not an http(s) URL",
                          hint="give http://HOST:9091, with its port, to --gateway or PUSHGATEWAY_URL")
    return full


def parse_grouping(pairs: Sequence[str]) -> dict[str, str]:
    grouping = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--grouping {pair!r} is not KEY=VALUE")
        grouping[key] = value
    return grouping


def read_exposition(path: str, text: str) -> list[Metric]:
    """Metric families of a Prometheus text file. Raises InputError naming the bad line."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return list(text_string_to_metric_families(text))
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            list(text_string_to_metric_families(line + "\n"))
        except ValueError as exc:
            raise InputError(f"{path}, line {number}: not Prometheus text format ({exc}): "
                             f"{line[:80]!r}") from None
    raise InputError(f"{path}: not Prometheus text format (inconsistent TYPE or HELP lines)")


def push(settings: Settings, url: str, *, job: str, grouping: Mapping[str, str],
         families: Sequence[Metric], method: str) -> str:
    """POST (add, replacing same-named metrics), PUT (replace the group) or DELETE the group.

    Returns the masked URL pushed to. Raises UpstreamError after retries.
    """
    from prometheus_client.exposition import (
        delete_from_gateway,
        push_to_gateway,
        pushadd_to_gateway,
    )

    parts = urlsplit(url)
    user = parts.username or settings.environ.get("PUSHGATEWAY_USERNAME")
    password = parts.password or settings.environ.get("PUSHGATEWAY_PASSWORD")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    client = ApiClient("Pushgateway", clean, settings=settings.http,
                       auth=basic_auth(user, password) if user and password else None,
                       auth_hint="check PUSHGATEWAY_USERNAME and PUSHGATEWAY_PASSWORD",
                       display=mask_url(url))
    handler = _handler(client)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    try:
        if method == "DELETE":
            delete_from_gateway(clean, job=job, grouping_key=dict(grouping), handler=handler)
        elif method == "PUT":
            push_to_gateway(clean, job=job, registry=registry, grouping_key=dict(grouping),
                            handler=handler)
        else:
            pushadd_to_gateway(clean, job=job, registry=registry, grouping_key=dict(grouping),
                               handler=handler)
    finally:
        client.close()
    return mask_url(url)


def _handler(client: ApiClient) -> Callable[..., Callable[[], None]]:
    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        def send() -> None:
            client.request(method, url, content=data if method != "DELETE" else None,
                           headers=dict(headers))

        return send

    return handler
