"""A loopback Argo CD API: `GET /api/v1/applications` (with `selector`), `GET
/api/v1/applications/{name}`, Bearer tokens, and Argo CD's error bodies
(`{"error", "code", "message"}`, gRPC codes: 16 unauthenticated, 5 not found)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.fakes.server import Answer, FakeServer, Request, authorised


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeApplication:
    name: str
    path: str
    sync_revision: str
    sync_status: str = "Synced"
    health: str = "Healthy"
    labels: dict[str, str] = field(default_factory=dict)
    history: list[tuple[str, datetime]] = field(default_factory=list)  # (revision, deployedAt)
    operation: dict[str, Any] | None = None
    repo_url: str = "https://bitbucket.org/acme/gitops.git"
    history_limit: int = 10  # spec.revisionHistoryLimit

    def as_json(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "sync": {"status": self.sync_status, "revision": self.sync_revision,
                     "comparedTo": {"source": {"repoURL": self.repo_url, "path": self.path,
                                               "targetRevision": "main"}}},
            "health": {"status": self.health},
            "history": [
                {"id": n, "revision": revision, "deployedAt": stamp(at),
                 "deployStartedAt": stamp(at),
                 "source": {"repoURL": self.repo_url, "path": self.path,
                            "targetRevision": "main"}}
                for n, (revision, at) in enumerate(
                    self.history[-self.history_limit:],
                    start=max(0, len(self.history) - self.history_limit))
            ],
            "summary": {"images": []},
            "reconciledAt": "2026-11-25T09:00:00Z",
        }
        if self.operation:
            status["operationState"] = self.operation
        return {
            "metadata": {"name": self.name, "namespace": "argocd", "labels": self.labels},
            "spec": {"project": "default",
                     "source": {"repoURL": self.repo_url, "path": self.path,
                                "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": self.name}},
            "status": status,
        }


class FakeArgoCD(FakeServer):
    def __init__(self, token: str = "argocd-secret-token-42") -> None:
        super().__init__()
        self.token = token
        self.applications: dict[str, FakeApplication] = {}
        self.route("GET", "/api/v1/applications", self._list)

    def add(self, app: FakeApplication) -> FakeApplication:
        self.applications[app.name] = app
        self.route("GET", f"/api/v1/applications/{app.name}", self._one)
        return app

    def env(self) -> dict[str, str]:
        return {"ARGOCD_SERVER": self.url, "ARGOCD_AUTH_TOKEN": self.token}

    def _authorised(self, request: Request) -> Answer | None:
        if not authorised(request, self.token):
            return Answer(401, {"error": "no session information", "code": 16,
                                "message": "no session information"})
        return None

    def _list(self, request: Request) -> Answer:
        if denied := self._authorised(request):
            return denied
        items = list(self.applications.values())
        for selector in request.query.get("selector", []):
            key, _, value = selector.partition("=")
            items = [a for a in items if a.labels.get(key) == value]
        return Answer(200, {"metadata": {"resourceVersion": "12345"},
                            "items": [a.as_json() for a in items]})

    def _one(self, request: Request) -> Answer:
        if denied := self._authorised(request):
            return denied
        name = request.path.rsplit("/", 1)[-1]
        app = self.applications.get(name)
        if app is None:
            message = f'applications.argoproj.io "{name}" not found'
            return Answer(404, {"error": message, "code": 5, "message": message})
        return Answer(200, app.as_json())
