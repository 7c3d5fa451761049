"""Delivery to Microsoft Teams through Workflows webhooks (`TEAMS_WEBHOOK_<CHANNEL>`).

Office 365 connectors (`webhook.office.com`) are retired: such a URL is refused with the
migration in the message. The URL is a credential (its `sig=`), registered as a secret and shown
only as `https://…/workflows/****`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from devex_cli.config import HttpSettings
from devex_cli.errors import ConfigError
from devex_cli.http import ApiClient
from devex_cli.masking import register_secret

_LEGACY_HOSTS = ("webhook.office.com", "outlook.office.com", "outlook.office365.com")


def variable_for(channel: str) -> str:
    return "TEAMS_WEBHOOK_" + re.sub(r"[^A-Za-z0-9]", "_", channel).upper()


def webhook_for(channel: str, environ: Mapping[str, str]) -> str | None:
    url = environ.get(variable_for(channel)) or None
    if url:
        register_secret(url)
        parts = urlsplit(url)
        for part in parts.query.split("&"):
            if part.startswith("sig="):
                register_secret(part[4:])
        # What follows /workflows/ names the flow: every line that shows the path (devex's
        # request log, an error) shows `/workflows/****`, as the contract promises.
        _, workflows, flow = parts.path.partition("/workflows/")
        if workflows and flow:
            register_secret(flow)
    return url


def masked(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://…/workflows/****" if "/workflows/" in parts.path \
        else f"{parts.scheme}://…/****"


def check_webhook(channel: str, url: str) -> None:
    """Refuse retired connector URLs. Raises ConfigError explaining the migration."""
    host = (urlsplit(url).hostname or "").lower()
    if any(host == legacy or host.endswith("." + legacy) for legacy in _LEGACY_HOSTS):
        raise ConfigError(
            f"{variable_for(channel)} is an Office 365 connector URL ({host}); Microsoft retired "
            "connectors",
            hint="create a Workflows webhook in Teams (channel -> Workflows -> 'Post to a channel "
                 "when a webhook request is received') and set its URL instead")
    if urlsplit(url).scheme not in ("https", "http"):
        raise ConfigError(f"{variable_for(channel)} is not an http(s) URL")


def post(url: str, body: dict[str, Any], settings: HttpSettings) -> int:
    """POST the payload; returns the status (any 2xx). Raises UpstreamError after retries."""
    parts = urlsplit(url)
    with ApiClient("Teams", f"{parts.scheme}://{parts.netloc}", settings=settings,
                   display=masked(url)) as client:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return client.request("POST", path, json_body=body).status_code
