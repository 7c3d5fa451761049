"""The hand-computed world: an app repository `pay` and its GitOps history whose DORA figures
were worked out by hand (tests/test_collect.py checks them; other tests reuse the world)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import FAST_HTTP
from tests.gitworld import GitRepo, image, kustomization, overlay


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class World:
    """App repository `pay` and its GitOps history (see the docstring of `build`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        app = GitRepo(root / "pay")
        self.c0 = app.commit("Initial commit", {"a": "0"}, when=at("2026-09-01T09:00"))
        self.c1 = app.commit("PAY-1 feature one", {"a": "1"}, when=at("2026-09-02T10:00"))
        self.c2 = app.commit("PAY-2 feature two", {"a": "2"}, when=at("2026-09-03T10:00"))
        app.checkout("feature", create=True)
        self.c3 = app.commit("feature work", {"b": "3"}, when=at("2026-09-04T10:00"))
        app.checkout("main")
        self.m1 = app.merge("feature", "Merge pull request #5 from feature/PAY-3",
                            when=at("2026-09-04T12:00"))
        self.c4 = app.commit("PAY-4 later; uses UTF-8", {"a": "4"}, when=at("2026-10-05T10:00"))
        gitops = GitRepo(root / "gitops")

        def deploy(when: str, message: str, **tags: str) -> str:
            return gitops.commit(message, {overlay("pay", env): kustomization([image("pay", tag)])
                                           for env, tag in tags.items()}, when=at(when))

        deploy("2026-09-01T12:00", "first", prod=self.c0[:7], qa=self.c0[:7])
        deploy("2026-09-03T12:00", "qa c2", qa=self.c2[:7])
        deploy("2026-09-05T12:00", "qa m1", qa=self.m1[:8])
        deploy("2026-09-06T12:00", "prod m1", prod=self.m1[:7])
        deploy("2026-09-07T12:00", "rebuild, same revision", prod=f"1.0.1-{self.m1[:7]}")
        deploy("2026-10-06T12:00", "qa c4", qa=self.c4[:7])
        deploy("2026-10-06T18:00", "prod c4", prod=self.c4[:7])
        self.rollback = deploy("2026-10-06T20:00", "roll back prod", prod=self.m1[:7])
        self.config = root / "devex.toml"
        self.config.write_text(FAST_HTTP + '[gitops]\nrepo = "gitops"\n\n'
                               '[jira]\nprojects = ["PAY"]\n\n[services.pay]\nrepo = "pay"\n')


@dataclass
class GateWorld:
    """The gate's world: app repository `pay` whose commit `deployed` ("PROJ-1 first feature")
    is deployed to qa by the GitOps repository; tests add the commits the gate is to judge."""

    app: GitRepo
    gitops: GitRepo
    deployed: str

    def deploy(self, tag: str, environment: str = "qa", service: str = "pay",
               extra: list[dict[str, str]] | None = None) -> str:
        return self.gitops.commit(f"deploy {service} {tag} to {environment}", {
            overlay(service, environment): kustomization([image(service, tag), *(extra or [])])})


def gate_world(root: Path) -> GateWorld:
    app = GitRepo(root / "pay")
    app.commit("Initial commit", {"app.py": "print('v1')\n"})
    deployed = app.commit("PROJ-1 first feature", {"app.py": "print('v2')\n"})
    world = GateWorld(app, GitRepo(root / "gitops"), deployed)
    world.deploy(deployed[:7])
    return world
