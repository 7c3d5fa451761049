"""The GitOps repository: desired state per service and environment, and its history.

One pass over `git log --first-parent --raw` of the tracked branch, limited to the manifest
templates, then one `git cat-file --batch` for every blob those commits wrote. A commit is a
deployment of a service to an environment when the revision (or version) it gives differs from its
first parent's.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devex_cli.cache import (
    BOOLEAN,
    INTEGER,
    TEXT,
    JsonCache,
    entries,
    fields,
    keyed,
    list_of,
    map_of,
    one_of,
    optional,
    row,
)
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

# Of these (service, digits-only tag) pairs, the ones that name a commit of the service's app
# repository: asked once for all the tags a read meets.
CommitChecker = Callable[[Collection[tuple[str, str]]], Collection[tuple[str, str]]]


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
class Redeployment:
    """A new tag of the same commit (a rebuild: `58ddfd6-41-1` -> `58ddfd6-42-1`, or a short SHA
    followed by the full one): not a deployment, counted apart."""

    service: str
    environment: str
    release: Release
    previous: Release
    gitops_commit: str
    time: datetime
    manifest: str


@dataclass(frozen=True)
class ThirdParty:
    """An image that is not the organisation's (redis, keycloak beside its own images), as
    deployed at the branch head: listed by `status`, counted nowhere."""

    image: str
    environment: str
    version: str
    manifest: str


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
    redeployments: tuple[Redeployment, ...] = ()
    third_party: tuple[ThirdParty, ...] = ()

    def state(self, service: str, environment: str) -> DeployedState | None:
        return self.current.get((service, environment))

    def require_environments(self, names: Sequence[str]) -> None:
        """Raises UsageError naming the environments the repository has, for a name it does
        not know (`QA`, `"qa "`, a `staging` it never had): never "nothing deployed there"."""
        for name in names:
            if name not in self.environments:
                raise UsageError(
                    f"unknown environment {name!r}: the GitOps repository has "
                    f"{', '.join(self.environments) or 'none'}",
                    hint="names are matched exactly; pass one of them")


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
    variant: str | None = None,
) -> GitOpsHistory:
    """Every deployment along the first-parent history of the tracked branch.

    `has_commit` decides whether a tag of digits only names a commit of the service's app
    repository; without it such a tag is a version. `variant` names the kept state for a caller
    whose `has_commit` judges differently from others' (default: one state for readers with a
    checker, one for readers without), so that callers do not undo each other's state.

    The reader's state at the branch head is kept in the cache: a later run reads only the
    commits since (`git log OLD..NEW`), so its cost grows with new commits, not with history. It
    reads everything again when the branch was rewritten, the settings that shape the reading
    changed, a path's image names now map to services differently, or a digits-only tag is
    judged differently.
    """
    branch = settings.gitops.branch or _head_branch(repo)
    templates = _templates(settings)
    aliases = {alias: name for name, s in settings.services.items() for alias in s.aliases}
    pinned = {name: s.image for name, s in settings.services.items() if s.image}
    cache = _state_cache(repo, branch, settings,
                         variant or ("checked" if has_commit is not None else "plain"))
    fingerprint = _fingerprint(templates, aliases, pinned)
    try:
        head = _branch_head(repo, branch)
        state = _ReaderState.load(cache.load(), fingerprint)
        if state is not None and not state.digits_hold(has_commit):
            state = None
        if state is not None and state.head != head:
            since = state.head
            if since is None or commits_after(repo, since, head) is None:
                state = None
            else:
                commits = _log(repo, f"{since}..{head}", templates)
                blobs = _parse_blobs(repo, commits)  # a few: no manifest cache
                if not state.apply(commits, blobs, templates, aliases, pinned, has_commit):
                    state = None
        if state is None:
            commits = _log(repo, head, templates) if head else []
            blobs = _parse_blobs(repo, commits, settings.cache_dir())
            state = _ReaderState(fingerprint)
            state.apply(commits, blobs, templates, aliases, pinned, has_commit)
    except GitFailed as exc:
        raise InputError(f"cannot read the GitOps repository {repo}: {exc}",
                         hint="is it a complete clone? try removing devex's cached copy") from None
    if state.head != head:
        state.head = head
        cache.save(state.dump())
    return state.history(head, branch, settings)


_STATE_VERSION = 2
_IMAGE_ROW = row(TEXT, optional(TEXT), optional(TEXT), optional(TEXT))
_SKIPPED_ROW = row(TEXT, TEXT, TEXT)
# The reader's state is read whole or not at all, so its every row is checked on load: a few
# milliseconds for a year of history, a fraction of decoding it.
_STATE_SHAPE = fields(
    fingerprint=TEXT, head=optional(TEXT),
    releases=list_of(row(TEXT, TEXT, TEXT, TEXT, optional(TEXT))),
    path_services=map_of(list_of(TEXT)),
    path_images=map_of(list_of(_IMAGE_ROW)),
    held=map_of(list_of(row(TEXT, optional(TEXT)))),
    digits=list_of(row(TEXT, TEXT, BOOLEAN)),
    current=list_of(row(TEXT, TEXT, TEXT, optional(TEXT), TEXT, TEXT, INTEGER)),
    deployments=list_of(row(TEXT, TEXT, TEXT, optional(TEXT), optional(TEXT), optional(TEXT),
                            TEXT, INTEGER, TEXT)),
    skipped=list_of(_SKIPPED_ROW), broken=list_of(_SKIPPED_ROW))


class _ReaderState:
    """What the reader knows after the commits it has read; kept in the cache between runs."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.head: str | None = None
        # (service, environment) -> {path: release}: a service can be given by several paths
        # (an alias and its new name) for a moment, so the release of a path is kept per path.
        self.releases: dict[tuple[str, str], dict[str, Release]] = defaultdict(dict)
        self.path_services: dict[str, set[str]] = defaultdict(set)  # path -> services it gives
        self.path_images: dict[str, tuple[Image, ...]] = {}
        self.held: dict[str, dict[tuple[str, str | None], None]] = defaultdict(dict)
        self.rules: dict[str, PathRule] = {}
        self.digits: dict[tuple[str, str], bool] = {}  # (service, digits tag) -> a commit?
        self.current: dict[tuple[str, str], DeployedState] = {}
        self.deployments: list[Deployment] = []
        self.skipped: list[Skipped] = []
        self.broken: dict[str, Skipped] = {}

    def digits_hold(self, has_commit: CommitChecker | None) -> bool:
        """Whether every digits-only tag read so far is still judged as it was. A tag found to
        name a commit keeps naming it (commits are immutable); one that did not is asked again,
        as its commit may have been pushed since."""
        asked = [pair for pair, was in self.digits.items() if not was]
        return not (asked and has_commit and has_commit(asked))

    def apply(self, commits: list[_Commit], blobs: Mapping[str, _Parsed],
              templates: list[ManifestTemplate], aliases: Mapping[str, str],
              pinned: Mapping[str, str], has_commit: CommitChecker | None) -> bool:
        """Read `commits` (oldest first) on top of the state. False when the new commits change
        how a path already read maps images to services: the history must be read again."""
        paths = {c.path for commit in commits for c in commit.changes}
        earlier = {path: _path_rule(path, self.held[path], templates, aliases, pinned)
                   for path in paths if self.held.get(path)}
        for commit in commits:
            for change in commit.changes:
                parsed = blobs.get(change.blob) if change.blob else None
                for image in parsed if isinstance(parsed, tuple) else ():
                    self.held[change.path].setdefault((image.name, image.new_name), None)
        for path in paths:
            rule = _path_rule(path, self.held.get(path, {}), templates, aliases, pinned)
            if path in earlier and earlier[path] != rule:
                return False
            self.rules[path] = rule
        self._judge_digits(commits, blobs, templates, aliases, has_commit)
        for commit in commits:
            self._read(commit, blobs, templates, aliases)
        return True

    def _judge_digits(self, commits: list[_Commit], blobs: Mapping[str, _Parsed],
                      templates: list[ManifestTemplate], aliases: Mapping[str, str],
                      has_commit: CommitChecker | None) -> None:
        """Whether each new digits-only tag names a commit, in one question for all."""
        wanted: dict[tuple[str, str], None] = {}  # newest first: a source may list from those
        for commit in reversed(commits):
            for change in commit.changes:
                where = _where(change.path, templates)
                parsed = blobs.get(change.blob) if change.blob else None
                if where is None or not isinstance(parsed, tuple):
                    continue
                for image in parsed:
                    named = self.rules[change.path].service_of(image, where[0])
                    revision = revision_in_tag(image.tag)
                    if named is None or not revision or not is_digits_only(revision):
                        continue
                    pair = (aliases.get(named, named), revision)
                    if pair not in self.digits:
                        wanted[pair] = None
        found = set(has_commit(list(wanted))) if wanted and has_commit else set()
        for pair in wanted:
            self.digits[pair] = pair in found

    def _read(self, commit: _Commit, blobs: Mapping[str, _Parsed],
              templates: list[ManifestTemplate], aliases: Mapping[str, str]) -> None:
        touched: set[tuple[str, str]] = set()
        for change in commit.changes:
            where = _where(change.path, templates)
            if where is None:
                continue
            path_service, environment = where
            if change.blob is None:
                self.path_images.pop(change.path, None)
                self.broken.pop(change.path, None)
            else:
                parsed = blobs.get(change.blob, ManifestError("blob missing from the repository"))
                if isinstance(parsed, ManifestError):
                    problem = Skipped(change.path, commit.sha, str(parsed))
                    self.skipped.append(problem)
                    self.broken[change.path] = problem
                    continue
                self.broken.pop(change.path, None)
                self.path_images[change.path] = parsed
            rule = self.rules[change.path]
            for gone in self.path_services.pop(change.path, set()):
                self.releases[(gone, environment)].pop(change.path, None)
                touched.add((gone, environment))
            for image in self.path_images.get(change.path, ()):
                named = rule.service_of(image, path_service)
                if named is None:
                    continue
                service = aliases.get(named, named)
                release = self._release(image, service)
                touched.add((service, environment))
                if release is not None:
                    self.releases[(service, environment)][change.path] = release
                    self.path_services[change.path].add(service)
        changed = {c.path for c in commit.changes}
        for service, environment in sorted(touched):
            now = _release_of(self.releases[(service, environment)], changed)
            before = self.current.get((service, environment))
            if now is None:
                self.current.pop((service, environment), None)
                continue
            release, manifest = now
            if before is not None and before.release.identity == release.identity:
                if before.release != release or before.manifest != manifest:
                    self.current[(service, environment)] = DeployedState(
                        service, environment, release, manifest,
                        before.gitops_commit, before.deployed_at)
                continue
            self.deployments.append(Deployment(
                service, environment, release, before.release if before else None,
                commit.sha, commit.committed_at, manifest))
            self.current[(service, environment)] = DeployedState(
                service, environment, release, manifest, commit.sha, commit.committed_at)

    def _release(self, image: Image, service: str) -> Release | None:
        tag = image.tag or image.digest
        if not tag:
            return None
        revision = revision_in_tag(image.tag)
        if revision and is_digits_only(revision) and not self.digits.get((service, revision)):
            revision = None
        return Release(version=tag, revision=revision)

    def history(self, head: str | None, branch: str, settings: Settings) -> GitOpsHistory:
        deployments, current = self.deployments, self.current
        found_envs = {env for _, env in current} | {d.environment for d in deployments}
        environments = order_environments(found_envs, settings.gitops.environments)
        keep = set(environments)
        return GitOpsHistory(
            head=head,
            branch=branch,
            deployments=tuple(d for d in deployments if d.environment in keep),
            current={k: v for k, v in current.items() if k[1] in keep},
            skipped=tuple(self.skipped),
            environments=tuple(environments),
            production=production_environment(environments, settings.gitops.production),
            services=tuple(sorted({s for s, e in current if e in keep}
                                  | {d.service for d in deployments if d.environment in keep})),
            broken_at_head=tuple(self.broken.values()),
        )

    def dump(self) -> dict[str, Any]:
        def pair(r: Release) -> tuple[str, str | None]:
            return r.version, r.revision

        return {
            "fingerprint": self.fingerprint, "head": self.head,
            "releases": [[s, e, path, *pair(r)]
                         for (s, e), by_path in self.releases.items()
                         for path, r in by_path.items()],
            "path_services": {p: sorted(s) for p, s in self.path_services.items() if s},
            "path_images": {p: [[i.name, i.new_name, i.new_tag, i.digest] for i in images]
                            for p, images in self.path_images.items()},
            "held": {p: [list(pair) for pair in pairs] for p, pairs in self.held.items()},
            "digits": [[s, tag, was] for (s, tag), was in self.digits.items()],
            "current": [[s.service, s.environment, *pair(s.release), s.manifest,
                         s.gitops_commit, int(s.deployed_at.timestamp())]
                        for s in self.current.values()],
            "deployments": [[d.service, d.environment, *pair(d.release),
                             *(pair(d.previous) if d.previous else (None, None)),
                             d.gitops_commit, int(d.time.timestamp()), d.manifest]
                            for d in self.deployments],
            "skipped": [[s.path, s.commit, s.reason] for s in self.skipped],
            "broken": [[s.path, s.commit, s.reason] for s in self.broken.values()],
        }

    @classmethod
    def load(cls, data: Mapping[str, Any], fingerprint: str) -> _ReaderState | None:
        """The state from the cache (of the shape `_STATE_SHAPE`), or None when it is missing,
        stale or unreadable."""
        if data.get("fingerprint") != fingerprint:
            return None
        state = cls(fingerprint)
        try:
            state.head = data["head"]
            releases: dict[tuple[str | None, str | None], Release] = {}

            def release(version: str, revision: str | None) -> Release:
                found = releases.get((version, revision))
                if found is None:
                    found = releases[(version, revision)] = Release(version, revision)
                return found

            def moment(seconds: int) -> datetime:
                return datetime.fromtimestamp(seconds, UTC)

            for s, e, path, version, revision in data["releases"]:
                state.releases[(s, e)][path] = release(version, revision)
            for path, services in data["path_services"].items():
                state.path_services[path] = set(services)
            state.path_images = {p: tuple(Image(*fields) for fields in images)
                                 for p, images in data["path_images"].items()}
            for path, pairs in data["held"].items():
                state.held[path] = {(name, new_name): None for name, new_name in pairs}
            state.digits = {(s, tag): bool(was) for s, tag, was in data["digits"]}
            for s, e, version, revision, manifest, commit, at in data["current"]:
                state.current[(s, e)] = DeployedState(s, e, release(version, revision),
                                                      manifest, commit, moment(at))
            state.deployments = [
                Deployment(s, e, release(version, revision),
                           None if before is None else release(before, before_revision),
                           commit, moment(at), manifest)
                for s, e, version, revision, before, before_revision, commit, at, manifest
                in data["deployments"]]
            state.skipped = [Skipped(*fields) for fields in data["skipped"]]
            state.broken = {fields[0]: Skipped(*fields) for fields in data["broken"]}
        except (KeyError, OverflowError, OSError, ValueError):
            return None  # damaged (a time out of range): the history is read again
        return state


def _fingerprint(templates: list[ManifestTemplate], aliases: Mapping[str, str],
                 pinned: Mapping[str, str]) -> str:
    """What shapes the reading besides the commits: a change reads the history again."""
    return repr((sorted((t.template, t.service or '') for t in templates), sorted(aliases.items()),
                 sorted(pinned.items())))


def _state_cache(repo: Path, branch: str, settings: Settings, variant: str) -> JsonCache:
    name = hashlib.sha256(f"{repo.resolve()}\0{branch}\0{variant}".encode()).hexdigest()[:16]
    return JsonCache(settings.cache_dir() / "gitops-state", name, version=_STATE_VERSION,
                     shape=_STATE_SHAPE, grows_only=False)


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


def commits_after(repo: Path, since: str, head: str | None) -> set[str] | None:
    """The first-parent commits of the branch after `since`, up to `head` (`git rev-list
    --first-parent since..head`): as many as there are new commits, whatever the history's
    length. None when `since` is not on the branch's first-parent chain."""
    if head is None:
        return None
    if since == head:
        return set()
    try:
        out = git(repo, "rev-list", "--first-parent", "--parents", f"{since}..{head}")
    except GitFailed:
        return None
    lines = [line.split() for line in out.splitlines() if line.strip()]
    if not lines or lines[-1][1:2] != [since]:
        return None
    return {line[0] for line in lines}


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


def _branch_head(repo: Path, branch: str) -> str | None:
    """The commit the branch points at; None for an empty repository."""
    head = _rev(repo, branch)
    if head is None and branch != "HEAD":
        raise UsageError(f"the GitOps repository has no branch {branch!r}",
                         hint="set gitops.branch to the branch Argo CD tracks")
    return head


def _log(repo: Path, revisions: str, templates: list[ManifestTemplate]) -> list[_Commit]:
    """The first-parent commits of `revisions` (a commit or a range) that touch a template,
    oldest first."""
    out = git(repo, "log", "--first-parent", "--reverse", "--diff-merges=first-parent",
              "--no-renames", "--raw", "--no-abbrev", "-z", "--format=%x01%H%x02%ct", revisions,
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
# blob SHA -> its images as rows, or {"error": why it cannot be read}
_MANIFESTS_SHAPE = entries(one_of(list_of(_IMAGE_ROW), keyed(error=TEXT)))


def _parse_blobs(repo: Path, commits: list[_Commit],
                 cache_dir: Path | None = None) -> dict[str, _Parsed]:
    """Each manifest version parsed once: a blob's content never changes, so what it gives is
    kept in the cache by blob SHA and a later run reads and parses only new blobs."""
    cache = JsonCache(cache_dir, "gitops-manifests", version=1, shape=_MANIFESTS_SHAPE
                      ) if cache_dir else None
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


def _path_rule(path: str, held: Iterable[tuple[str, str | None]],
               templates: list[ManifestTemplate], aliases: Mapping[str, str],
               pinned: Mapping[str, str]) -> PathRule:
    """How a path maps images to services, from the image names it has ever held."""
    where = _where(path, templates)
    service = where[0] if where else None
    canonical = aliases.get(service, service) if service else None
    images = [Image(name, new_name) for name, new_name in held]
    return choose_path_rule(service, images, pinned_image=pinned.get(canonical or ""))
