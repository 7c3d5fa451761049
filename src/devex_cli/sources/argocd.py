"""Argo CD: applications with their sync, health, operation state and deployment history.

One `GET /api/v1/applications` per collection (the `fields` parameter cannot select
`status.history`, so whole applications are read). `status.history` keeps only the last
`revisionHistoryLimit` successful syncs (10 by default): entries already seen are kept in the cache,
so older deployments keep Argo CD's times after Argo CD has forgotten them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devex_cli.config import Settings
from devex_cli.errors import ConfigError, UpstreamError
from devex_cli.http import ApiClient, BearerAuth
from devex_cli.sources.base import ApiSource


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    revision: str  # the GitOps commit Argo CD synced
    deployed_at: datetime
    deploy_started_at: datetime | None = None


@dataclass(frozen=True)
class Application:
    name: str
    project: str
    repo_url: str
    path: str | None
    target_revision: str
    sync_status: str  # Synced | OutOfSync | Unknown
    sync_revision: str | None
    health: str  # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    operation_phase: str | None  # Succeeded | Failed | Error | Running | Terminating
    operation_revision: str | None
    operation_message: str | None
    operation_finished_at: datetime | None
    history: tuple[HistoryEntry, ...]
    images: tuple[str, ...]

    @property
    def sync_failed(self) -> bool:
        return self.operation_phase in ("Failed", "Error")


def server_url(server: str) -> str:
    """`ARGOCD_SERVER` as the argocd CLI takes it (`host[:port]`) or as a URL."""
    return server if "://" in server else f"https://{server}"


class ArgoCDClient(ApiSource):
    """Argo CD's API. Use it as a context manager. Raises ConfigError when it is not
    configured."""

    system = "argocd"

    def __init__(self, settings: Settings, *, api: ApiClient | None = None) -> None:
        server = settings.environ.get("ARGOCD_SERVER")
        if not server:
            raise ConfigError("Argo CD is not configured",
                              hint="set ARGOCD_SERVER and ARGOCD_AUTH_TOKEN")
        token = settings.environ.get("ARGOCD_AUTH_TOKEN")
        self._settings = settings
        self.api = api or ApiClient(
            "Argo CD", server_url(server), settings=settings.http,
            auth=BearerAuth(token) if token else None,
            auth_hint="check ARGOCD_AUTH_TOKEN (an API token of an account with applications, "
                      "get)")

    def applications(self) -> list[Application]:
        """Every application the token can see (narrowed by argocd.selector / .projects)."""
        params: dict[str, Any] = {}
        if self._settings.argocd.selector:
            params["selector"] = self._settings.argocd.selector
        if self._settings.argocd.projects:
            params["projects"] = list(self._settings.argocd.projects)
        body = self.api.get_json("/api/v1/applications", params=params)
        if not isinstance(body, Mapping) or not isinstance(body.get("items") or [], list):
            raise UpstreamError("Argo CD", "/api/v1/applications answered an unexpected shape "
                                "(no 'items' list)")
        return [parse_application(item) for item in body.get("items") or []]


def parse_application(item: Any) -> Application:
    """An application from its JSON (`v1alpha1Application`). Raises UpstreamError on a bad shape."""
    try:
        metadata = item["metadata"]
        spec = item.get("spec") or {}
        source = spec.get("source") or (spec.get("sources") or [{}])[0]
        status = item.get("status") or {}
        sync = status.get("sync") or {}
        operation = status.get("operationState") or {}
        result = operation.get("syncResult") or {}
        return Application(
            name=str(metadata["name"]),
            project=str(spec.get("project") or "default"),
            repo_url=str(source.get("repoURL") or ""),
            path=source.get("path"),
            target_revision=str(source.get("targetRevision") or "HEAD"),
            sync_status=str(sync.get("status") or "Unknown"),
            sync_revision=sync.get("revision") or _first(sync.get("revisions")),
            health=str((status.get("health") or {}).get("status") or "Unknown"),
            operation_phase=operation.get("phase"),
            operation_revision=result.get("revision") or _first(result.get("revisions")),
            operation_message=operation.get("message"),
            operation_finished_at=_time(operation.get("finishedAt")),
            history=tuple(
                HistoryEntry(int(h.get("id", 0)),
                             str(h.get("revision") or _first(h.get("revisions")) or ""),
                             _required_time(h.get("deployedAt")),
                             _time(h.get("deployStartedAt")))
                for h in status.get("history") or [] if h.get("deployedAt")),
            images=tuple(str(i) for i in (status.get("summary") or {}).get("images") or []),
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise UpstreamError("Argo CD", "answered an application of an unexpected shape") from None


def _first(values: Sequence[str] | None) -> str | None:
    return values[0] if values else None


def _time(value: str | None) -> datetime | None:
    return _required_time(value) if value else None


def _required_time(value: str | None) -> datetime:
    if not value:
        raise ValueError("no time")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def map_applications(
    applications: Sequence[Application],
    *,
    owner_of_path: Any,
    services: Sequence[str],
    environments: Sequence[str],
    explicit: Mapping[str, str],
) -> dict[tuple[str, str], Application]:
    """(service, environment) -> application.

    `argocd.applications` maps names explicitly ("app" = "service/environment"); otherwise the
    application's source path is matched against the folders the GitOps reading found,
    then its name is read as `{service}-{environment}` or `{environment}-{service}`.
    """
    mapped: dict[tuple[str, str], Application] = {}
    known_services, known_envs = set(services), set(environments)
    for app in applications:
        key: tuple[str, str] | None = None
        if app.name in explicit:
            service, _, environment = explicit[app.name].partition("/")
            key = (service, environment)
        elif app.path and (found := owner_of_path(app.path.strip("/"))):
            key = found
        else:
            for service in known_services:
                for environment in known_envs:
                    if app.name in (f"{service}-{environment}", f"{environment}-{service}"):
                        key = (service, environment)
        if key is not None and key[0] in known_services and key[1] in known_envs:
            mapped[key] = app
    return mapped
