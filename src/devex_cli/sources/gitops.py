"""The GitOps repository: desired state per service and environment, and its history.

One pass over `git log --first-parent --raw` of the tracked branch, limited to the manifest
templates, then one `git cat-file --batch` for every blob those commits wrote. A commit is a
deployment of a service to an environment when the revision (or version) it gives differs from its
first parent's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devex_cli.config import Settings
from devex_cli.errors import InputError, UsageError
from devex_cli.gitcli import GitFailed, git, local_repository, read_blobs
from devex_cli.gitops_layout import (
    Image,
    ManifestError,
    ManifestTemplate,
    PathRule,
    choose_path_rule,
    is_digits_only,
    order_environments,
    parse_kustomization,
    production_environment,
    revision_in_tag,
)

_NULL_SHA = "0" * 40

# (service, revision) -> does the service's app repository have that commit?
CommitChecker = Callable[[str, str], bool]


@dataclass(frozen=True)
class Release:
    """What a manifest deploys of a service: the tag, and the commit it names if any."""

    version: str
    revision: str | None

    @property
    def identity(self) -> str:
        return self.revision or f"version:{self.version}"


@dataclass(frozen=True)
class Deployment:
    service: str
    environment: str
    release: Release
    previous: Release | None
    gitops_commit: str
    time: datetime  # the GitOps commit's committer time
    manifest: str


@dataclass(frozen=True)
class Skipped:
    path: str
    commit: str
    reason: str


@dataclass(frozen=True)
class DeployedState:
    """What is deployed of a service in an environment at the branch head."""

    service: str
    environment: str
    release: Release
    manifest: str
    gitops_commit: str
    deployed_at: datetime


@dataclass(frozen=True)
class GitOpsHistory:
    head: str | None
    branch: str
    deployments: tuple[Deployment, ...]
    current: Mapping[tuple[str, str], DeployedState]
    skipped: tuple[Skipped, ...]
    environments: tuple[str, ...]
    production: str | None
    services: tuple[str, ...] = field(default=())
    broken_at_head: tuple[Skipped, ...] = ()

    def state(self, service: str, environment: str) -> DeployedState | None:
        return self.current.get((service, environment))


@dataclass
class _Change:
    path: str
    blob: str | None  # None: the path was deleted


@dataclass
class _Commit:
    sha: str
    committed_at: datetime
    changes: list[_Change]


def open_repository(spec: str | None, settings: Settings, *, default_here: bool = False) -> Path:
    """A local checkout of the GitOps repository: the path itself, or a clone in the cache.

    With `default_here`, the current folder is the repository when none is configured.
    Raises UsageError for a path that is not a git repository, UpstreamError when a remote
    cannot be fetched.
    """
    spec = spec or settings.gitops.repo or ("." if default_here else None)
    if not spec:
        raise UsageError("no GitOps repository given",
                         hint="pass --gitops PATH|URL, set DEVEX_GITOPS_REPO or gitops.repo")
    return local_repository(spec, settings.cache_dir() / "gitops", what="GitOps repository")


def read_history(
    repo: Path,
    settings: Settings,
    *,
    has_commit: CommitChecker | None = None,
) -> GitOpsHistory:
    """Every deployment along the first-parent history of the tracked branch.

    `has_commit` decides whether a tag of digits only names a commit of the service's app
    repository; without it such a tag is a version.
    """
    branch = settings.gitops.branch or _head_branch(repo)
    templates = _templates(settings)
    try:
        commits = _log(repo, branch, templates)
        blobs = _parse_blobs(repo, commits, settings.cache_dir())
    except GitFailed as exc:
        raise InputError(f"cannot read the GitOps repository {repo}: {exc}",
                         hint="is it a complete clone? try removing devex's cached copy") from None
    aliases = {alias: name for name, s in settings.services.items() for alias in s.aliases}
    rules = _path_rules(commits, blobs, templates, settings, aliases)

    # (service, environment) -> {path: release}: a service can be given by several paths
    # (an alias and its new name) for a moment, so the release of a path is kept per path.
    releases: dict[tuple[str, str], dict[str, Release]] = defaultdict(dict)
    path_services: dict[str, set[str]] = defaultdict(set)  # path -> services it gives
    path_images: dict[str, tuple[Image, ...]] = {}
    current: dict[tuple[str, str], DeployedState] = {}
    deployments: list[Deployment] = []
    skipped: list[Skipped] = []
    broken: dict[str, Skipped] = {}

    for commit in commits:
        touched: set[tuple[str, str]] = set()
        for change in commit.changes:
            where = _where(change.path, templates)
            if where is None:
                continue
            path_service, environment = where
            if change.blob is None:
                path_images.pop(change.path, None)
                broken.pop(change.path, None)
            else:
                parsed = blobs.get(change.blob, ManifestError("blob missing from the repository"))
                if isinstance(parsed, ManifestError):
                    problem = Skipped(change.path, commit.sha, str(parsed))
                    skipped.append(problem)
                    broken[change.path] = problem
                    continue
                broken.pop(change.path, None)
                path_images[change.path] = parsed
            rule = rules[change.path]
            for gone in path_services.pop(change.path, set()):
                releases[(gone, environment)].pop(change.path, None)
                touched.add((gone, environment))
            for image in path_images.get(change.path, ()):
                named = rule.service_of(image, path_service)
                if named is None:
                    continue
                service = aliases.get(named, named)
                release = _release(image, service, has_commit)
                touched.add((service, environment))
                if release is not None:
                    releases[(service, environment)][change.path] = release
                    path_services[change.path].add(service)
        changed = {c.path for c in commit.changes}
        for service, environment in sorted(touched):
            now = _release_of(releases[(service, environment)], changed)
            before = current.get((service, environment))
            if now is None:
                current.pop((service, environment), None)
                continue
            release, manifest = now
            if before is not None and before.release.identity == release.identity:
                if before.release != release or before.manifest != manifest:
                    current[(service, environment)] = DeployedState(
                        service, environment, release, manifest,
                        before.gitops_commit, before.deployed_at)
                continue
            deployments.append(Deployment(
                service, environment, release, before.release if before else None,
                commit.sha, commit.committed_at, manifest))
            current[(service, environment)] = DeployedState(
                service, environment, release, manifest, commit.sha, commit.committed_at)

    found_envs = {env for _, env in current} | {d.environment for d in deployments}
    environments = order_environments(found_envs, settings.gitops.environments)
    keep = set(environments)
    return GitOpsHistory(
        head=_rev(repo, branch),
        branch=branch,
        deployments=tuple(d for d in deployments if d.environment in keep),
        current={k: v for k, v in current.items() if k[1] in keep},
        skipped=tuple(skipped),
        environments=tuple(environments),
        production=production_environment(environments, settings.gitops.production),
        services=tuple(sorted({s for s, e in current if e in keep}
                              | {d.service for d in deployments if d.environment in keep})),
        broken_at_head=tuple(broken.values()),
    )


def _release(image: Image, service: str, has_commit: CommitChecker | None) -> Release | None:
    tag = image.tag or image.digest
    if not tag:
        return None
    revision = revision_in_tag(image.tag)
    if revision and is_digits_only(revision) and not (has_commit and has_commit(service, revision)):
        revision = None
    return Release(version=tag, revision=revision)


def _release_of(by_path: Mapping[str, Release],
                changed: set[str]) -> tuple[Release, str] | None:
    """The release a service has in an environment after a commit: of the paths giving it, the
    one the commit changed wins."""
    if not by_path:
        return None
    _, path = min((path not in changed, path) for path in by_path)
    return by_path[path], path


def _templates(settings: Settings) -> list[ManifestTemplate]:
    own = [ManifestTemplate(s.manifest, service=name)
           for name, s in settings.services.items() if s.manifest]
    return own + [ManifestTemplate(t) for t in settings.gitops.manifests]


def first_parent_positions(repo: Path, branch: str) -> dict[str, int]:
    """The first-parent commits of the branch, numbered from the oldest."""
    try:
        out = git(repo, "rev-list", "--first-parent", "--reverse", branch)
    except GitFailed:
        return {}
    return {sha: n for n, sha in enumerate(out.split())}


_NOT_OVERLAYS = {"base", "bases", "components", "component"}


def unmatched_manifests(repo: Path, branch: str, settings: Settings) -> list[str]:
    """Kustomizations at the branch head that no template matches (bases and components aside)."""
    try:
        listing = git(repo, "ls-tree", "-r", "--name-only", "-z", branch)
    except GitFailed:
        return []
    templates = _templates(settings)
    return [
        path for path in listing.split("\x00")
        if path.rsplit("/", 1)[-1] in ("kustomization.yaml", "kustomization.yml")
        and _where(path, templates) is None
        and not _NOT_OVERLAYS.intersection(path.split("/")[:-1])
    ]


def path_owner(path: str, settings: Settings) -> tuple[str, str] | None:
    """(service, environment) a manifest path belongs to by the templates, before aliases."""
    return _where(path, _templates(settings))


def _where(path: str, templates: Iterable[ManifestTemplate]) -> tuple[str, str] | None:
    for template in templates:
        if found := template.match(path):
            return found
    return None


def _head_branch(repo: Path) -> str:
    try:
        return git(repo, "symbolic-ref", "--short", "HEAD").strip()
    except GitFailed:
        return "HEAD"  # a detached checkout: read what is checked out


def _rev(repo: Path, branch: str) -> str | None:
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{branch}^{{commit}}").strip()
    except GitFailed:
        return None


def _log(repo: Path, branch: str, templates: list[ManifestTemplate]) -> list[_Commit]:
    if _rev(repo, branch) is None:
        if branch == "HEAD":
            return []  # an empty repository
        raise UsageError(f"the GitOps repository has no branch {branch!r}",
                         hint="set gitops.branch to the branch Argo CD tracks")
    out = git(repo, "log", "--first-parent", "--reverse", "--diff-merges=first-parent",
              "--no-renames", "--raw", "--no-abbrev", "-z", "--format=%x01%H%x02%ct", branch,
              "--", *sorted({t.pathspec for t in templates}))
    commits = []
    for chunk in out.split("\x01")[1:]:
        header, _, raw = chunk.partition("\x00")
        sha, committed = header.split("\x02")
        tokens = raw.lstrip("\n").split("\x00")
        changes = []
        for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
            parts = meta.lstrip("\n:").split()
            if len(parts) < 5:
                continue
            blob = None if parts[4].startswith("D") or parts[3] == _NULL_SHA else parts[3]
            changes.append(_Change(path, blob))
        commits.append(_Commit(sha, datetime.fromtimestamp(int(committed), UTC), changes))
    return commits


_Parsed = tuple[Image, ...] | ManifestError


def _parse_blobs(repo: Path, commits: list[_Commit],
                 cache_dir: Path | None = None) -> dict[str, _Parsed]:
    """Each manifest version parsed once: a blob's content never changes, so what it gives is
    kept in the cache by blob SHA and a later run reads and parses only new blobs."""
    from devex_cli.cache import JsonCache

    cache = JsonCache(cache_dir, "gitops-manifests") if cache_dir else None
    known: dict[str, Any] = cache.load() if cache else {}
    shas = {c.blob for commit in commits for c in commit.changes if c.blob}
    parsed: dict[str, _Parsed] = {}
    for sha in shas & known.keys():
        entry = known[sha]
        parsed[sha] = (ManifestError(entry["error"]) if isinstance(entry, dict)
                       else tuple(Image(*fields) for fields in entry))
    for sha, content in read_blobs(repo, shas - known.keys()).items():
        try:
            images = parse_kustomization(content)
        except ManifestError as exc:
            parsed[sha] = exc
            known[sha] = {"error": str(exc)}
        else:
            parsed[sha] = images
            known[sha] = [[i.name, i.new_name, i.new_tag, i.digest] for i in images]
    if cache:
        cache.save(known)
    return parsed


def _path_rules(
    commits: list[_Commit],
    blobs: Mapping[str, tuple[Image, ...] | ManifestError],
    templates: list[ManifestTemplate],
    settings: Settings,
    aliases: Mapping[str, str],
) -> dict[str, PathRule]:
    images: dict[str, list[Image]] = defaultdict(list)
    for commit in commits:
        for change in commit.changes:
            parsed = blobs.get(change.blob) if change.blob else None
            images[change.path].extend(parsed if isinstance(parsed, tuple) else ())
    rules = {}
    for path, held in images.items():
        where = _where(path, templates)
        service = where[0] if where else None
        canonical = aliases.get(service, service) if service else None
        own = settings.services.get(canonical) if canonical else None
        rules[path] = choose_path_rule(service, held, pinned_image=own.image if own else None)
    return rules
