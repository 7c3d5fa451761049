"""Real git repositories for tests (and benchmarks): commits with chosen times, merges, and
Kustomize overlays written the way people write them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

EPOCH = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


class GitRepo:
    """A repository with a deterministic clock: every commit one hour after the previous one."""

    def __init__(self, path: Path, *, branch: str = "main", start: datetime = EPOCH) -> None:
        self.path = path
        self.clock = start
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)
        self.git("config", "user.name", "Dev One")
        self.git("config", "user.email", "dev1@example.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        done = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True,
                              text=True, check=False, env={**os.environ, **(env or {})})
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def _times(self, when: datetime | None, authored: datetime | None) -> dict[str, str]:
        if when is None:
            self.clock += timedelta(hours=1)
            when = self.clock
        else:
            self.clock = max(self.clock, when)
        return {"GIT_COMMITTER_DATE": when.isoformat(),
                "GIT_AUTHOR_DATE": (authored or when).isoformat()}

    def commit(
        self,
        message: str,
        files: Mapping[str, str | None] | None = None,
        *,
        when: datetime | None = None,
        authored: datetime | None = None,
        author: str | None = None,
    ) -> str:
        """Write (or, with None, delete) files and commit them; returns the full SHA."""
        for name, content in (files or {}).items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", name)
        args = ["commit", "-q", "--allow-empty", "-m", message]
        if author:
            args += ["--author", author]
        self.git(*args, env=self._times(when, authored))
        return self.sha()

    def checkout(self, branch: str, *, create: bool = False) -> None:
        self.git("checkout", "-q", *(["-b"] if create else []), branch)

    def merge(self, branch: str, message: str, *, when: datetime | None = None) -> str:
        self.git("merge", "-q", "--no-ff", "-m", message, branch, env=self._times(when, None))
        return self.sha()

    def sha(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev)


def kustomization(images: Iterable[Mapping[str, str]], *, extra: str = "") -> str:
    """A kustomization.yaml with the given `images:` entries, values written unquoted."""
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization",
             "resources:", "  - ../../base", "images:"]
    for image in images:
        first = True
        for key, value in image.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {value}")
            first = False
    return "\n".join(lines) + "\n" + extra


def overlay(service: str, environment: str) -> str:
    return f"apps/{service}/overlays/{environment}/kustomization.yaml"


def image(service: str, tag: str, *, registry: str = "registry.example.com/team") -> dict[str, str]:
    return {"name": f"{registry}/{service}", "newTag": tag}
