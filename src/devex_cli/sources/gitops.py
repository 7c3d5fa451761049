"""The GitOps repository: desired state per service and environment, and its history.

One pass over `git log --first-parent --raw` of the tracked branch (its YAML files, and any file
a configured template names), then one `git cat-file --batch` for every blob those commits wrote;
each blob is parsed once ever (kept in the cache by SHA). What the files say is read by
`gitops_reader` as the contract's "GitOps layout" says; its state at the branch head is kept, so
a later run reads only the commits since.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from devex_cli.cache import (
    BOOLEAN,
    TEXT,
    Kinds,
    fields,
    keyed,
    list_of,
    one_of,
    optional,
    row,
)
from devex_cli.config import Settings
from devex_cli.dora.model import Skipped
from devex_cli.errors import InputError, UsageError
from devex_cli.gitcli import GitFailed, git, local_repository, read_blobs
from devex_cli.gitops_layout import (
    ENVIRONMENT_NAMES,
    ManifestTemplate,
    order_environments,
    production_environment,
)
from devex_cli.gitops_reader import (
    Change,
    Commit,
    CommitChecker,
    DeployedState,
    Deployment,
    Facts,
    Layout,
    ReaderState,
    Redeployment,
    Release,
    RevisionsMet,
    ThirdParty,
)
from devex_cli.gitops_reader import Settings as ReaderSettings
from devex_cli.manifests import (
    ImageUse,
    ManifestError,
    ManifestFacts,
    fact_key,
    kind_file_name,
    parse_manifest,
)
from devex_cli.store import ManifestStore, ReaderStateStore

__all__ = ["SYSTEM", "CommitChecker", "DeployedState", "Deployment", "GitOpsHistory", "NothingFound",
           "Redeployment", "Release", "RevisionsMet", "Skipped", "ThirdParty", "commits_after",
           "in_service_set",
           "open_repository", "path_owner", "read_history"]

log = logging.getLogger("devex.gitops")

SYSTEM = "gitops"  # the name the GitOps repository reports its health under
_NULL_SHA = "0" * 40
# Every YAML file but a chart's Go templates (not YAML until rendered) and dot-folders' (CI
# configuration such as .github/).
_YAML_PATHSPECS = (":(glob)**/*.yaml", ":(glob)**/*.yml", ":(glob,exclude)**/templates/**",
                   ":(glob,exclude)**/.*/**")


class NothingFound(UsageError):
    """No manifest of the GitOps repository gave a service."""


@dataclass(frozen=True)
class GitOpsHistory:
    head: str | None
    branch: str
    # in order; the reader's (`gitops_reader.Deployments`: built as they are first used) unless
    # some were left out
    deployments: Sequence[Deployment]
    current: Mapping[tuple[str, str], DeployedState]
    skipped: tuple[Skipped, ...]
    environments: tuple[str, ...]
    production: str | None
    services: tuple[str, ...] = field(default=())
    broken_at_head: tuple[Skipped, ...] = ()
    redeployments: tuple[Redeployment, ...] = ()
    third_party: tuple[ThirdParty, ...] = ()
    unread: tuple[str, ...] = ()  # files at the head that set images but belong to no unit
    # unit (folder or environment file) -> the (service, environment) pairs it gives at the head
    owners: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # a file broken at the head -> the (service, environment) pairs whose manifests read it
    broken_for: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    looked_for: str = ""  # what the reader looked for, said when it found nothing
    # the kept reader state the deployments come from (its name and generation): while it is
    # the same, the deployments it had are still the first ones, in order (the state only
    # adds). None when the state is not kept.
    reading: str | None = None
    # the deployments this read added to a kept state (the new commits'; none when the whole
    # history was read): their app sources can be asked about them early
    added: tuple[Deployment, ...] = ()

    def state(self, service: str, environment: str) -> DeployedState | None:
        return self.current.get((service, environment))

    def owner_of(self, folder: str) -> tuple[str, str] | None:
        """The (service, environment) a folder of the repository (an Argo CD application's
        source path) gives, when it gives exactly one."""
        pairs = self.owners.get(folder.strip("/"), ())
        return pairs[0] if len(pairs) == 1 else None

    def skipped_items(self) -> tuple[Skipped, ...]:
        """What the reading did not read, as `status` and `collect` both report it: every
        manifest version that could not be parsed (path and commit, anywhere in the history),
        then the files at the branch head that set images but belong to no environment. A tag
        that names no commit is read (a version), so it is not here."""
        return (*self.skipped,
                *(Skipped(path, self.head or "", "sets images but belongs to no environment "
                       "(no environment name in its path, and no gitops.manifests template)")
                  for path in self.unread))

    def broken(self, service: str, environment: str) -> tuple[Skipped, ...]:
        """Files broken at the head that the service's manifests in the environment read."""
        return tuple(s for s in self.broken_at_head
                     if (service, environment) in self.broken_for.get(s.path, ()))

    def require_environments(self, names: Sequence[str]) -> None:
        """Raises UsageError naming the environments the repository has, for a name it does
        not know (`QA`, `"qa "`, a `staging` it never had): never "nothing deployed there"."""
        for name in names:
            if name not in self.environments:
                raise UsageError(
                    f"unknown environment {name!r}: the GitOps repository has "
                    f"{', '.join(self.environments) or 'none'}",
                    hint="names are matched exactly; pass one of them")

    def only(self, patterns: Sequence[str]) -> GitOpsHistory:
        """The history of the services whose names match one of the glob `patterns` (all of
        it without patterns). Decisions taken over the whole repository (environments,
        third-party images, which folder gives which service: an Argo CD application of a
        folder that gives another service, or two, is not one of these services') stay the
        whole repository's.

        Raises UsageError when the patterns match none of the services.
        """
        if not patterns:
            return self
        kept = {s for s in self.services if in_service_set(s, patterns)}
        if not kept:
            raise UsageError(
                f"collect.services ({', '.join(patterns)}) matches none of the "
                f"{len(self.services)} services of the GitOps repository (such as "
                f"{', '.join(self.services[:5])})",
                hint="patterns are globs on service names as `devex status` lists them")
        for pattern in patterns:  # a typo in one pattern would silently serve fewer services
            if not any(fnmatchcase(service, pattern) for service in self.services):
                log.warning("collect.services pattern %r matches none of the GitOps "
                            "repository's services; the others serve %s", pattern,
                            ", ".join(sorted(kept)))

        def ours(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
            return tuple(pair for pair in pairs if pair[0] in kept)

        return replace(
            self,
            deployments=tuple(d for d in self.deployments if d.service in kept),
            added=tuple(d for d in self.added if d.service in kept),
            current={k: v for k, v in self.current.items() if k[0] in kept},
            services=tuple(s for s in self.services if s in kept),
            redeployments=tuple(r for r in self.redeployments if r.service in kept),
            broken_for={path: ours(pairs) for path, pairs in self.broken_for.items()},
            broken_at_head=tuple(b for b in self.broken_at_head
                                 if ours(self.broken_for.get(b.path, ()))
                                 or b.path not in self.broken_for))

    def require_services(self) -> None:
        """Raises UsageError saying what was looked for and which files came closest when no
        manifest gave a service: empty figures with exit 0 would read as "no deployments"."""
        if self.services:
            return
        closest = ", ".join(self.unread[:5]) or "no YAML file sets an image"
        raise NothingFound(
            f"no service found in the GitOps repository: looked for {self.looked_for}; "
            f"closest: {closest}",
            hint="name environments in paths (apps/<service>/overlays/prod/, "
                 "envs/prod/<service>/, values-prod.yaml) or set gitops.manifests, e.g. "
                 "[\"{service}/kustomization.yaml\"] for a production-only repository")


def in_service_set(service: str, patterns: Sequence[str]) -> bool:
    """Whether a service is one of `collect.services`' (glob patterns; none: every one)."""
    return not patterns or any(fnmatchcase(service, pattern) for pattern in patterns)


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
    met: RevisionsMet | None = None,
    variant: str | None = None,
) -> GitOpsHistory:
    """Every deployment along the first-parent history of the tracked branch.

    `has_commit` decides whether a tag of digits only names a commit of the service's app
    repository; without it such a tag is a version. `met` hears, before such tags are judged,
    every (service, revision) the tags read name, newest first. `variant` names the kept state for a caller
    whose `has_commit` judges differently from others' (default: one state for readers with a
    checker, one for readers without), so that callers do not undo each other's state.

    The reader's state at the branch head is kept in the cache: a later run reads only the
    commits since (`git log OLD..NEW`), so its cost grows with new commits, not with history. It
    reads everything again when the branch was rewritten, the settings that shape the reading
    changed, new commits change a decision taken over the whole history (which images are
    third-party, which folder only serves as a base, which image is which service), or a
    digits-only tag is judged differently.
    """
    branch, head = _branch_and_head(repo, settings.gitops.branch)
    reading = reader_settings(settings)
    pathspecs = _pathspecs(reading.layout.templates)
    kept = _KeptState(repo, branch, settings,
                      variant or ("checked" if has_commit is not None else "plain"))
    every = settings.gitops.history == "all"
    fingerprint = reading.fingerprint() + f" history={settings.gitops.history}"
    added_from: int | None = None  # where the deployments of new commits start
    try:
        state = kept.load(fingerprint)
        if state is not None and not state.digits_hold(has_commit):
            state = None
        if state is not None and state.head != head:
            since = state.head
            if since is None or not _follows(repo, since, head, every):
                state = None
            else:
                commits = _log(repo, f"{since}..{head}", pathspecs, every=every)
                facts = _parse_blobs(repo, commits, settings.cache_dir())
                added_from = len(state.deployments)
                if not state.apply(commits, facts, reading, has_commit, met=met):
                    state = None
        if state is None:
            added_from = None
            commits = _log(repo, head, pathspecs, every=every) if head else []
            facts = _parse_blobs(repo, commits, settings.cache_dir())
            state = ReaderState(fingerprint)
            state.apply(commits, facts, reading, has_commit, met=met)
    except GitFailed as exc:
        raise InputError(f"cannot read the GitOps repository {repo}: {exc}",
                         hint="is it a complete clone? try removing devex's cached copy") from None
    if state.head != head:
        state.head = head
        kept.save(state)
    kept.hold(state)
    history = _history(state, head, branch, settings, reading)
    if added_from is not None:
        history = replace(history, added=tuple(
            d for d in state.deployments[added_from:] if d.environment in history.environments))
    if kept.generation is None:
        return history
    return replace(history, reading=f"{kept.name} {kept.generation}")


def reader_settings(settings: Settings) -> ReaderSettings:
    """What shapes the reading, from devex.toml."""
    own = [ManifestTemplate(s.manifest, service=name)
           for name, s in settings.services.items() if s.manifest]
    configured = [ManifestTemplate(t) for t in settings.gitops.manifests]
    names = set(ENVIRONMENT_NAMES) | {e.lower() for e in settings.gitops.environments}
    if settings.gitops.production:
        names.add(settings.gitops.production.lower())
    layout = Layout(own + configured, discover=not configured, environments=names,
                    production=settings.gitops.production or "prod")
    return ReaderSettings(
        layout=layout,
        aliases={alias: name for name, s in settings.services.items() for alias in s.aliases},
        pinned={name: s.image for name, s in settings.services.items() if s.image},
        third_party=settings.gitops.third_party)


def _history(state: ReaderState, head: str | None, branch: str, settings: Settings,
             reading: ReaderSettings) -> GitOpsHistory:
    current, pairs = state.current, state.deployments.pairs()
    found = {env for _, env in current} | {env for _, env in pairs}
    environments = order_environments(found, settings.gitops.environments)
    keep = set(environments)
    deployments: Sequence[Deployment] = state.deployments.view()
    if any(env not in keep for _, env in pairs):
        deployments = tuple(d for d in deployments if d.environment in keep)
    owners = {unit: tuple((reading.aliases.get(s, s), e) for s, e in pairs)
              for unit, pairs in state.owners().items()}
    if reading.layout.discover:
        looked_for = ("YAML files in a folder named for an environment ("
                      + ", ".join(sorted(reading.layout.environments)) + ") or named "
                      "values-ENV.yaml / ENV.yaml, setting images (kustomize images:, "
                      "Deployment/StatefulSet/DaemonSet/Rollout containers, Helm values, "
                      "Argo CD Application or .argocd-source-*.yaml overrides, Flux HelmRelease "
                      "values)")
    else:
        looked_for = "files matching " + ", ".join(t.template for t in reading.layout.templates)
    return GitOpsHistory(
        head=head,
        branch=branch,
        deployments=deployments,
        current={k: v for k, v in current.items() if k[1] in keep},
        skipped=tuple(state.skipped),
        environments=tuple(environments),
        production=production_environment(environments, settings.gitops.production),
        services=tuple(sorted({s for s, e in (*current, *pairs) if e in keep})),
        broken_at_head=tuple(state.broken.values()),
        redeployments=tuple(r for r in state.redeployments if r.environment in keep),
        third_party=tuple(t for t in state.third_party_at_head()
                          if t.environment in keep or not settings.gitops.environments),
        unread=tuple(state.unread_files()),
        owners=owners,
        broken_for={path: tuple(pair for unit in units for pair in owners.get(unit, ()))
                    for path, units in state.broken_owners().items()},
        looked_for=looked_for,
    )


# The reader's state is read whole or not at all: its top level is checked here, every row as
# it is read back (ReaderState.load), and anything amiss reads the history again.
_TABLE, _MAP = Kinds(list), Kinds(dict)
_STATE_SHAPE = fields(
    fingerprint=TEXT, head=optional(TEXT), decided=BOOLEAN, tree=_MAP, units=_TABLE,
    unit_images=_MAP, dep_units=_MAP, referenced=_TABLE, held=_MAP, repositories=_MAP,
    imageful=_TABLE, third_party=_TABLE, bases=_TABLE, rules=_MAP, digits=_TABLE,
    releases_by_unit=_TABLE, current=_TABLE, gone=_TABLE, deployments=_TABLE, redeployments=_TABLE,
    skipped=_TABLE, broken=_TABLE, release_table=_TABLE)


# The reader states a long-running process (`collect --serve`) holds between its collections,
# by store file and name, with the store generation they were last saved as: the next
# collection goes on from the one in memory instead of parsing it from the store again (None:
# not held, every read loads from the store). A read takes its state out while it uses it (the
# state changes in place) and puts it back once it is complete again.
_held: dict[tuple[Path, str], tuple[ReaderState, str | None]] | None = None
_held_lock = threading.Lock()


@contextlib.contextmanager
def reader_states_held() -> Iterator[None]:
    """Within the block, each GitOps reader state stays in memory between the reads of this
    process (an exporter's collections): a later read starts from it, as from the store. They
    are let go when it ends."""
    global _held
    with _held_lock:
        outer, _held = _held, _held if _held is not None else {}
    try:
        yield
    finally:
        with _held_lock:
            _held = outer


class _KeptState:
    """The reader's state of a repository, branch and variant, kept in the store: its body
    (checked whole: the top level here, every row by ReaderState.load) and its deployments in
    batches, one added as new commits are read (`store.ReaderStateStore`). Anything amiss reads
    the history again. In a process that holds its states (`reader_states_held`), the state in
    memory is taken instead of the store's."""

    def __init__(self, repo: Path, branch: str, settings: Settings, variant: str) -> None:
        self.name = hashlib.sha256(
            f"{repo.resolve()}\0{branch}\0{variant}".encode()).hexdigest()[:16]
        self.store = ReaderStateStore(settings.cache_dir())
        self.generation: str | None = None  # of the rows loaded (ReaderStateStore.save)
        # where earlier versions kept it, whole, as JSON: removed once the store has it
        self.legacy = settings.cache_dir() / "gitops-state" / f"{self.name}.json"

    def load(self, fingerprint: str) -> ReaderState | None:
        with _held_lock:
            held = _held.pop((self.store.path, self.name), None) if _held is not None else None
        if held is not None and held[0].fingerprint == fingerprint:
            state, self.generation = held
            return state
        found = self.store.load(self.name)
        if found is None:
            return None
        body, rows, self.generation = found
        try:
            data = json.loads(body)
        except (TypeError, ValueError, RecursionError):  # of another type, not JSON, too deep
            return None
        usable = _STATE_SHAPE(data) if isinstance(data, dict) else None
        if usable is None or len(usable) != len(data):
            return None
        return ReaderState.load(usable, fingerprint, rows)

    def save(self, state: ReaderState) -> None:
        """The body, and the deployments the store does not have yet."""
        body = json.dumps(state.dump(deployments=False), separators=(",", ":"))
        self.generation = self.store.save(self.name, body, state.deployment_rows, state.kept,
                                          self.generation if state.kept else None)
        state.kept = len(state.deployments)  # (not written: the next save writes them all)
        with contextlib.suppress(OSError):
            self.legacy.unlink(missing_ok=True)

    def hold(self, state: ReaderState) -> None:
        """Put the state back in memory for the next read, in a process that holds them."""
        with _held_lock:
            if _held is not None:
                _held[(self.store.path, self.name)] = (state, self.generation)


def path_owner(path: str, settings: Settings) -> tuple[str, str] | None:
    """(service, environment) a manifest path (a file, or a folder such as an Argo CD
    application's source path) belongs to by its own name, before aliases; None when the path
    does not name its service."""
    layout = reader_settings(settings).layout
    path = path.strip("/")
    where = layout.locate(path) or layout.locate(f"{path}/kustomization.yaml")
    if where is None or where.service is None:
        return None
    return where.service, where.environment


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


def _branch_and_head(repo: Path, configured: str | None) -> tuple[str, str | None]:
    """The tracked branch (the configured one, else the one checked out) and the commit it
    points at (None: an empty repository); one git process for the checked-out branch."""
    if configured:
        return configured, _branch_head(repo, configured)
    with contextlib.suppress(GitFailed):  # (an empty repository: HEAD names no commit yet)
        # (--abbrev-ref applies to the names after it: the commit first)
        found = git(repo, "rev-parse", "HEAD^{commit}", "--abbrev-ref", "HEAD").split()
        if len(found) == 2:
            return found[1], found[0]
    branch = _head_branch(repo)
    return branch, _branch_head(repo, branch)


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
    """The commit the branch points at (the branch of that name, before a tag of it: git
    prefers the tag); None for an empty repository."""
    head = (None if branch == "HEAD" or branch.startswith("refs/")
            else _rev(repo, f"refs/heads/{branch}")) or _rev(repo, branch)
    if head is None and branch != "HEAD":
        raise UsageError(f"the GitOps repository has no branch {branch!r}",
                         hint="set gitops.branch to the branch Argo CD tracks")
    return head


def _pathspecs(templates: Sequence[ManifestTemplate]) -> list[str]:
    """Every YAML file (a kustomization's bases may sit anywhere), and what templates name."""
    return sorted({*_YAML_PATHSPECS, *(t.pathspec for t in templates)})


def _follows(repo: Path, since: str, head: str | None, every: bool) -> bool:
    """Whether the branch head still descends from the state's head (no rewrite)."""
    if not every:
        return commits_after(repo, since, head) is not None
    try:
        git(repo, "merge-base", "--is-ancestor", since, head or "HEAD")
    except GitFailed:
        return False
    return True


def _log(repo: Path, revisions: str, pathspecs: Sequence[str], *,
         every: bool = False) -> list[Commit]:
    """The commits of `revisions` (a commit or a range) that touch the pathspecs, oldest first:
    the first-parent chain, or (`every`) every commit but merges by committer time.

    On the first-parent chain the pathspecs are matched here, on the paths each commit
    changed, not given to git: with a wildcard pathspec git matches every entry of every tree
    it compares, changed or not, which grows with the folders of the repository (5x slower at
    2,000 services: quadratic in them). `every` gives them to git too: its history
    simplification by those paths leaves out a side branch whose changes a merge discarded
    (`-s ours`), which never reached the branch's tree, so was never deployed.
    """
    wanted = _path_matcher(tuple(pathspecs))
    chain = ["--no-merges", "--date-order"] if every else [
        "--first-parent", "--diff-merges=first-parent"]
    out = git(repo, "log", *chain, "--reverse", "--no-renames", "--raw", "--no-abbrev", "-z",
              "--format=%x01%H%x02%ct", revisions, "--", *(pathspecs if every else ()))
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
            if not wanted(path):
                continue
            blob = None if parts[4].startswith("D") or parts[3] == _NULL_SHA else parts[3]
            changes.append(Change(path, blob))
        if changes:  # as git lists only the commits that touch the pathspecs
            commits.append(Commit(sha, datetime.fromtimestamp(int(committed), UTC), changes))
    return commits


@lru_cache(maxsize=8)
def _path_matcher(pathspecs: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a path matches the pathspecs as git matches them (`:(glob)` and
    `:(glob,exclude)` magic, the only ones devex writes): an include and no exclude."""
    include: list[str] = []
    exclude: list[str] = []
    for spec in pathspecs:
        magic, _, pattern = spec[2:].partition(")") if spec.startswith(":(") else ("", "", spec)
        if set(magic.split(",")) - {"glob", "exclude"}:
            raise AssertionError(f"no matcher for the pathspec {spec!r}")  # devex writes them
        (exclude if "exclude" in magic.split(",") else include).append(_glob_regex(pattern))
    included = re.compile("|".join(include) or "(?!)")
    excluded = re.compile("|".join(exclude) or "(?!)")
    return lambda path: bool(included.fullmatch(path)) and not excluded.fullmatch(path)


def _glob_regex(pattern: str) -> str:
    """A regular expression of git's glob pathspec magic: `*` and `?` stop at `/`; `**/` at
    the start or after a `/` is any folders (none too), a final `/**` everything inside; a
    pattern without wildcards also matches everything under it."""
    if not any(c in pattern for c in "*?["):
        return f"(?:{re.escape(pattern.rstrip('/'))}(?:/.*)?)"
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "(?:" + "".join(out) + ")"


_USE_ROW = row(TEXT, optional(TEXT), optional(TEXT), optional(TEXT), TEXT)
# blob:kind -> what it says ([uses, resources, kustomization, patches]) or {"error": why not}
_MANIFEST = one_of(row(list_of(_USE_ROW), list_of(TEXT), BOOLEAN, list_of(TEXT)),
                   keyed(error=TEXT))
_MANIFESTS_VERSION = 4


class _Facts(Mapping[str, Facts]):
    """What each blob says (by `fact_key`): parsed once ever, kept in the store and read from
    it by key. A blob an incremental read meets again (a base file an overlay builds on) comes
    from the store, or is read from git when the store lost it."""

    def __init__(self, repo: Path, store: ManifestStore) -> None:
        self._repo = repo
        self._store = store
        self.known: dict[str, Any] = {}  # what this run read or parsed
        self.new: dict[str, Any] = {}  # what this run parsed: for the store
        self._parsed: dict[str, Facts] = {}

    def __getitem__(self, key: str) -> Facts:
        found = self._parsed.get(key)
        if found is None:
            if key not in self.known:
                self.fetch({key})
            if key not in self.known:
                raise KeyError(key)
            found = self._parsed[key] = _from_row(self.known[key])
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)

    def fetch(self, keys: Collection[str]) -> None:
        """The facts of these keys from the store, and those it does not have (or has damaged)
        from git."""
        wanted = set(keys) - self.known.keys()
        self.known.update((key, value) for key, value in self._store.get(wanted).items()
                          if _MANIFEST(value))
        self.parse(wanted - self.known.keys())

    def parse(self, keys: Collection[str]) -> None:
        """Read and parse the blobs of these keys (one `git cat-file --batch`)."""
        by_blob: dict[str, list[str]] = {}
        for key in keys:
            by_blob.setdefault(key.rsplit(":", 1)[0], []).append(key)
        for sha, content in read_blobs(self._repo, sorted(by_blob)):
            for key in by_blob[sha]:
                try:
                    facts = parse_manifest(kind_file_name(key), content)
                except ManifestError as exc:
                    self.known[key] = self.new[key] = {"error": str(exc)}
                else:
                    self.known[key] = self.new[key] = [
                        [[u.key, u.repository, u.tag, u.digest, u.use] for u in facts.uses],
                        list(facts.resources), facts.kustomization, list(facts.patches)]

    def save(self) -> None:
        self._store.add(self.new)
        self.new = {}


def _from_row(entry: Any) -> Facts:
    if isinstance(entry, dict):
        return ManifestError(entry["error"])
    uses, resources, kustomization, patches = entry
    return ManifestFacts(tuple(ImageUse(*fields) for fields in uses), tuple(resources),
                         kustomization, tuple(patches))


def _parse_blobs(repo: Path, commits: Sequence[Commit], cache_dir: Path) -> _Facts:
    """Each manifest version parsed once: a blob's content never changes, so what it says is
    kept in the store, and a later run reads (by key) the facts of its commits' blobs and
    parses only new ones."""
    facts = _Facts(repo, ManifestStore(cache_dir, _MANIFESTS_VERSION))
    facts.fetch({fact_key(c.path, c.blob) for commit in commits for c in commit.changes
                 if c.blob})
    facts.save()
    with contextlib.suppress(OSError):  # the whole-file cache of earlier versions
        (cache_dir / "gitops-manifests.json").unlink(missing_ok=True)
    return facts
