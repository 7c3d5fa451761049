"""The GitOps history, read commit by commit as the contract's "GitOps layout" says. Pure: commits
(paths and blob SHAs) and what each blob says in, deployments out; no git, no files.

Three passes over the new commits:
1. walk: the tree of YAML files moves commit by commit; each unit (an environment's folder, read
   as its kustomize build or as its files, or one environment file over its folder's shared
   values) touched by a change is evaluated to the images it deploys;
2. decide, over the whole history: which images are third-party, which units only serve as
   bases, and which of a unit's own images is which service (rules 1-3);
3. read: each change of a service's release in an environment is a deployment, a new tag of the
   same commit a redeployment.
The state after them is kept between runs; new commits extend it unless they change a decision.
"""

from __future__ import annotations

import posixpath
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, overload, runtime_checkable

from devex_cli.dora.model import Skipped
from devex_cli.gitops_layout import (
    BASE_FOLDERS,
    Location,
    ManifestTemplate,
    is_digits_only,
    last_segment,
    locate,
    locate_by_templates,
    names_service,
    revision_in_tag,
    same_commit,
    third_party_images,
)
from devex_cli.manifests import (
    KUSTOMIZATION_FILES,
    ImageUse,
    ManifestError,
    ManifestFacts,
    as_patch,
    combine,
    fact_key,
    is_yaml,
    split_reference,
)

Facts = ManifestFacts | ManifestError
# Of these (service, digits-only tag) pairs, the ones that name a commit of the service's app
# repository: asked once for all the tags a read meets.
CommitChecker = Callable[[Collection[tuple[str, str]]], Collection[tuple[str, str]]]
# Hears, just before digits-only tags are judged, every (service, revision) the tags being read
# name, newest first: a source that answers many revisions from one listing of the history (the
# listing the change sets need anyway) can then judge the tags from it.
RevisionsMet = Callable[[Sequence[tuple[str, str]]], None]


@dataclass
class Change:
    path: str
    blob: str | None  # None: the path was deleted


@dataclass
class Commit:
    sha: str
    committed_at: datetime
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class Release:
    """What a manifest deploys of a service: the tag, and the commit it names if any."""

    version: str
    revision: str | None

    @property
    def identity(self) -> str:
        return self.revision or f"version:{self.version}"

    def same_as(self, other: Release) -> bool:
        """The same deployed thing: one commit (whatever its tag), else one version."""
        if self.revision and other.revision:
            return same_commit(self.revision, other.revision)
        return self.identity == other.identity


@dataclass(frozen=True, slots=True)
class Deployment:
    service: str
    environment: str
    release: Release
    previous: Release | None
    gitops_commit: str
    time: datetime  # the GitOps commit's committer time
    manifest: str


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class DeployedState:
    """What is deployed of a service in an environment at the branch head."""

    service: str
    environment: str
    release: Release
    manifest: str
    gitops_commit: str
    deployed_at: datetime


class Layout:
    """Where a path belongs: configured templates first, then (unless `gitops.manifests` is
    set) discovery by environment names."""

    def __init__(self, templates: Sequence[ManifestTemplate], *, discover: bool,
                 environments: Iterable[str], production: str) -> None:
        self.templates = list(templates)
        self.discover = discover
        self.environments = frozenset(e.lower() for e in environments)
        self.production = production
        self._found: dict[str, Location | None] = {}

    def locate(self, path: str) -> Location | None:
        if path in self._found:
            return self._found[path]
        found = locate_by_templates(path, self.templates, self.production)
        if found is None and self.discover:
            found = locate(path, self.environments)
        self._found[path] = found
        return found

    def fingerprint(self) -> str:
        return repr((sorted((t.template, t.service or "") for t in self.templates),
                     self.discover, sorted(self.environments), self.production))


@dataclass
class Settings:
    """What shapes the reading besides the commits."""

    layout: Layout
    aliases: Mapping[str, str] = field(default_factory=dict)  # earlier name -> service
    pinned: Mapping[str, str] = field(default_factory=dict)  # service -> image name
    third_party: Sequence[str] = ()  # globs on image names

    def fingerprint(self) -> str:
        return repr((self.layout.fingerprint(), sorted(self.aliases.items()),
                     sorted(self.pinned.items()), list(self.third_party)))


@dataclass(frozen=True)
class Decisions:
    """What is decided over the whole history."""

    third_party: frozenset[str]  # image repositories
    bases: frozenset[str]  # units that only serve as bases of others
    rules: Mapping[str, Mapping[str, str]]  # unit -> own image key -> service (before aliases)

    def kept_by(self, new: Decisions, repositories: Collection[str],
                units: Collection[str]) -> bool:
        """Whether `new` decides as this did for the repositories and units known before."""
        return (new.third_party & set(repositories)) == self.third_party and \
            (new.bases & set(units)) == self.bases and \
            all({k: new.rules.get(u, {}).get(k) for k in rule} == rule
                for u, rule in self.rules.items())


@dataclass
class _Event:
    sha: str
    time: datetime
    images: dict[str, tuple[ImageUse, ...] | None]  # unit -> its images now (None: gone)
    manifests: dict[str, str]  # unit -> where its images are written, at this commit


class _Broken(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class ReaderState:
    """What the reader knows after the commits it has read; kept in the cache between runs."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.head: str | None = None
        self.tree: dict[str, str] = {}  # YAML path -> blob
        self.children: dict[str, set[str]] = defaultdict(set)  # folder -> its YAML files
        self.units: dict[str, Location] = {}
        self.unit_images: dict[str, tuple[ImageUse, ...]] = {}
        self.dep_units: dict[str, set[str]] = defaultdict(set)  # file -> units that read it
        self.referenced: set[str] = set()  # folders another kustomization builds on
        self.held: dict[str, list[tuple[tuple[str, str | None], ...]]] = defaultdict(list)
        self.repositories: dict[str, bool] = {}  # image -> any tag of it named a commit
        self.imageful: set[str] = set()  # files that set images (for "nothing found")
        self.decisions: Decisions | None = None
        self.digits: dict[tuple[str, str], bool] = {}
        # (service, environment) -> unit -> (release, manifest): several units can give one
        # service for a moment (a move), so each unit's is kept
        self.releases: dict[tuple[str, str], dict[str, tuple[Release, str]]] = defaultdict(dict)
        self.unit_services: dict[str, set[str]] = defaultdict(set)
        self.current: dict[tuple[str, str], DeployedState] = {}
        # what a service ran in an environment when its last path there was removed: the
        # release a path added back follows (the same history continues)
        self.gone: dict[tuple[str, str], Release] = {}
        self.deployments = Deployments()
        self.kept = 0  # of the deployments, those the store has (read from it)
        self.redeployments: list[Redeployment] = []
        self.skipped: list[Skipped] = []
        self.broken: dict[str, Skipped] = {}

    # -- reading ---------------------------------------------------------------------------

    def apply(self, commits: Sequence[Commit], facts: Mapping[str, Facts], settings: Settings,
              has_commit: CommitChecker | None, *, met: RevisionsMet | None = None) -> bool:
        """Read `commits` (oldest first) on top of the state. False when they change a decision
        already taken on earlier commits: the history must then be read again from the start."""
        known_repositories, known_units = set(self.repositories), set(self.units)
        events = self._walk(commits, facts, settings.layout)
        decisions = self._decide(settings)
        if self.decisions is not None and not self.decisions.kept_by(
                decisions, known_repositories, known_units):
            return False
        self.decisions = decisions
        self._judge_digits(events, settings, has_commit, met)
        for event in events:
            self._read(event, settings)
        return True

    def digits_hold(self, has_commit: CommitChecker | None) -> bool:
        """Whether every digits-only tag read so far is still judged as it was. A tag found to
        name a commit keeps naming it (commits are immutable); one that did not is asked again,
        as its commit may have been pushed since."""
        asked = [pair for pair, was in self.digits.items() if not was]
        return not (asked and has_commit and has_commit(asked))

    def _walk(self, commits: Sequence[Commit], facts: Mapping[str, Facts],
              layout: Layout) -> list[_Event]:
        events = []
        for commit in commits:
            affected: set[str] = set()
            for change in commit.changes:
                path = change.path
                folder = posixpath.dirname(path)
                if change.blob is None:
                    self.tree.pop(path, None)
                    self.children[folder].discard(path)
                    self.imageful.discard(path)
                    self.broken.pop(path, None)
                else:
                    self.tree[path] = change.blob
                    self.children[folder].add(path)
                    found = facts.get(fact_key(path, change.blob))
                    if isinstance(found, ManifestFacts) and found.uses:
                        self.imageful.add(path)
                    else:
                        self.imageful.discard(path)
                where = layout.locate(path)
                if where is not None:
                    self.units.setdefault(where.unit, where)
                    affected.add(where.unit)
                affected |= self.dep_units.get(path, set())
                affected |= self.dep_units.get(folder, set())  # a folder a build names
                if folder in self.units and not self.units[folder].is_file:
                    affected.add(folder)
            images: dict[str, tuple[ImageUse, ...] | None] = {}
            for unit in sorted(affected):
                try:
                    now = self._evaluate(unit, facts, layout)
                except _Broken as problem:
                    skipped = Skipped(problem.path, commit.sha, problem.reason)
                    if self.broken.get(problem.path) != skipped:
                        self.skipped.append(skipped)
                        self.broken[problem.path] = skipped
                    continue
                if now == self.unit_images.get(unit) or (now is None
                                                         and unit not in self.unit_images):
                    continue
                images[unit] = now
                if now is None:
                    self.unit_images.pop(unit, None)
                    continue
                self.unit_images[unit] = now
                held = tuple((u.key, u.repository) for u in now)
                if held not in self.held[unit]:
                    self.held[unit].append(held)
                for use in now:
                    if use.repository:
                        revision = revision_in_tag(use.tag)
                        names = bool(revision) and not is_digits_only(revision or "")
                        self.repositories[use.repository] = (
                            self.repositories.get(use.repository, False) or names)
            if images:
                events.append(_Event(commit.sha, commit.committed_at, images,
                                     {unit: self._manifest_path(unit) for unit in images}))
        return events

    def _evaluate(self, unit: str, facts: Mapping[str, Facts],
                  layout: Layout) -> tuple[ImageUse, ...] | None:
        """The images a unit deploys now; None when it is gone. Raises _Broken for a file it
        reads that cannot be read (the unit keeps what it had)."""
        where = self.units[unit]
        reads: set[str] = set()
        try:
            if where.is_file:
                if unit not in self.tree:
                    return None
                # its folder too: a shared file added beside it later (values.yaml) is read then
                reads.update((unit, posixpath.dirname(unit)))
                top = combine([self._facts(unit, facts)])
                shared = [p for p in sorted(self.children.get(posixpath.dirname(unit), ()))
                          if p != unit and self._shared_file(p, layout)]
                reads.update(shared)
                base = combine([f for p in shared
                                if isinstance(f := facts.get(fact_key(p, self.tree[p])),
                                              ManifestFacts)])
                return _over(base, top)
            files = sorted(self.children.get(unit, ()))
            if not files:
                return None
            kustomization = next((p for p in files
                                  if posixpath.basename(p) in KUSTOMIZATION_FILES), None)
            if kustomization is not None:
                built = self._build(unit, facts, reads, {unit})
            else:
                plain = [p for p in files if not _write_back(p)]
                reads.update(plain)
                built = combine([self._facts(p, facts) for p in plain])
            write_backs = [p for p in files if _write_back(p)]
            reads.update(write_backs)
            overrides = [u for p in write_backs for u in self._facts(p, facts).uses]
            return combine([ManifestFacts(uses=built)], overrides) if overrides else built
        finally:
            for path in reads:
                self.dep_units[path].add(unit)

    def _build(self, folder: str, facts: Mapping[str, Facts], reads: set[str],
               seen: set[str]) -> tuple[ImageUse, ...]:
        """A kustomization's local build: the workloads of the files and folders it names inside
        the repository (recursively), its `images:` overriding theirs."""
        path = next(p for name in sorted(KUSTOMIZATION_FILES)
                    if (p := posixpath.join(folder, name)) in self.tree)
        reads.add(path)
        own = self._facts(path, facts)
        parts = [own]
        for resource in own.resources:
            if "://" in resource or resource.startswith(("git@", "github.com/", "gitlab.com/")):
                continue  # remote: not fetched
            target = posixpath.normpath(posixpath.join(folder, resource))
            if target.startswith("../") or target in seen:
                continue
            reads.add(target)  # a file or folder not there yet is read when it comes
            if target in self.tree:
                self._built_on_file(folder, target)
                parts.append(self._facts(target, facts))
            elif self.children.get(target):
                self.referenced.add(target)
                inner = sorted(self.children[target])
                if any(posixpath.basename(p) in KUSTOMIZATION_FILES for p in inner):
                    parts.append(ManifestFacts(
                        uses=self._build(target, facts, reads, seen | {target})))
                else:
                    reads.update(inner)
                    parts += [self._facts(p, facts) for p in inner]
        for patch in own.patches:
            target = posixpath.normpath(posixpath.join(folder, patch))
            if target in self.tree:
                reads.add(target)
                self._built_on_file(folder, target)
                parts.append(as_patch(self._facts(target, facts)))
        return combine(parts)

    def _built_on_file(self, folder: str, target: str) -> None:
        """A file a kustomization builds on (a resource, a patch) only serves its build: the
        file (`prod.yaml` named as a patch) and the subfolder holding it (`resources/`) are
        never an environment's on their own."""
        self.referenced.add(target)
        holder = posixpath.dirname(target)
        if holder != folder and (not folder or holder.startswith(folder + "/")):
            self.referenced.add(holder)

    def _facts(self, path: str, facts: Mapping[str, Facts]) -> ManifestFacts:
        found = facts.get(fact_key(path, self.tree[path]),
                          ManifestError("blob missing from the repository"))
        if isinstance(found, ManifestError):
            raise _Broken(path, str(found))
        self.broken.pop(path, None)
        return found

    def _shared_file(self, path: str, layout: Layout) -> bool:
        """A file beside environment files that they all build on (`values.yaml`, a Flux
        base HelmRelease): not an environment's own, not a kustomization."""
        where = layout.locate(path)
        return is_yaml(path) and posixpath.basename(path) not in KUSTOMIZATION_FILES \
            and not _write_back(path) and not (where is not None and where.is_file)

    # -- deciding --------------------------------------------------------------------------

    def _decide(self, settings: Settings) -> Decisions:
        third = frozenset(third_party_images(self.repositories, settings.third_party))
        bases = frozenset(u for u in self.units
                          if u in self.referenced or posixpath.basename(u) in BASE_FOLDERS)
        rules: dict[str, dict[str, str]] = {}
        for unit, sets in self.held.items():
            if unit in bases:
                continue
            own_sets = [[(k, r) for k, r in held if not (r and r in third)] for held in sets]
            keys = list(dict.fromkeys(pair for held in own_sets for pair in held))
            if not keys:
                continue
            service = self.units[unit].service
            at_once = max(len(held) for held in own_sets)
            # the latest image with a name: a Helm `image.tag` whose repository is gone (its
            # chart's values.yaml removed) names nothing but the value path
            latest = next((pair for held in reversed(own_sets) for pair in held
                           if pair[1] or not pair[0].startswith("helm:")),
                          next((held[0] for held in reversed(own_sets) if held), keys[-1]))
            latest_name = _image_name(*latest)
            mapping: dict[str, str] = {}
            for key, repository in keys:
                pinned = next((s for s, image in settings.pinned.items()
                               if names_service([key, repository], image)), None)
                if pinned:
                    mapping[key] = pinned
                elif at_once <= 1:
                    mapping[key] = service or last_segment(latest_name)
                elif service and names_service([key, repository], service):
                    mapping[key] = service
                else:
                    mapping[key] = last_segment(_image_name(key, repository))
            rules[unit] = mapping
        return Decisions(third, bases, rules)

    def _judge_digits(self, events: Sequence[_Event], settings: Settings,
                      has_commit: CommitChecker | None, met: RevisionsMet | None) -> None:
        """Whether each new digits-only tag names a commit, in one question for all (`met`
        hears first every revision the events deploy)."""
        assert self.decisions is not None
        wanted: dict[tuple[str, str], None] = {}  # newest first: a source may list from those
        deployed: dict[tuple[str, str], None] = {}  # what `_read` will make releases of
        third_party, bases = self.decisions.third_party, self.decisions.bases
        for event in reversed(events):
            for unit, images in event.images.items():
                rule = self.decisions.rules.get(unit, {})
                for use in images or ():
                    revision = revision_in_tag(use.tag)
                    named = rule.get(use.key)
                    if named is None or not revision:
                        continue
                    pair = (settings.aliases.get(named, named), revision)
                    if met is not None and unit not in bases and not (
                            use.repository and use.repository in third_party):
                        deployed[pair] = None  # as `_read` skips bases and third parties
                    if is_digits_only(revision) and pair not in self.digits:
                        wanted[pair] = None
        if not wanted or has_commit is None:
            for pair in wanted:
                self.digits[pair] = False
            return
        if met is not None:
            met(list(deployed))
        found = set(has_commit(list(wanted)))
        for pair in wanted:
            self.digits[pair] = pair in found

    # -- deployments -----------------------------------------------------------------------

    def _read(self, event: _Event, settings: Settings) -> None:
        assert self.decisions is not None
        decisions = self.decisions
        # (service, environment) -> what each unit gave it before this commit
        touched: dict[tuple[str, str], dict[str, tuple[Release, str]]] = {}

        def touch(key: tuple[str, str]) -> None:
            if key not in touched:
                touched[key] = dict(self.releases[key])

        for unit, images in event.images.items():
            if unit in decisions.bases:
                continue
            environment = self.units[unit].environment
            for gone in self.unit_services.pop(unit, set()):
                touch((gone, environment))
                self.releases[(gone, environment)].pop(unit, None)
            rule = decisions.rules.get(unit, {})
            for use in images or ():
                named = rule.get(use.key)
                if named is None or (use.repository and use.repository in decisions.third_party):
                    continue
                service = settings.aliases.get(named, named)
                release = self._release(use, service)
                if release is None:
                    continue
                touch((service, environment))
                self.releases[(service, environment)].setdefault(
                    unit, (release, event.manifests[unit]))
                self.unit_services[unit].add(service)
        changed = set(event.images)
        for (service, environment), had in sorted(touched.items()):
            by_unit = self.releases[(service, environment)]
            # the units whose release of the service this commit changed (or added)
            moved = {u for u in by_unit if u in changed and had.get(u, (None,))[0] != by_unit[u][0]}
            now = _release_of(by_unit, moved or changed)
            before = self.current.get((service, environment))
            if now is not None and before is not None and not moved:
                # only a unit taken away (one cluster of several) or nothing of the service
                # changed: not a deployment
                self._remaining(before, by_unit)
                continue
            if now is None:
                if before is not None:
                    self.gone[(service, environment)] = before.release
                    del self.current[(service, environment)]
                continue
            release, manifest = now
            if before is not None and before.release.same_as(release):
                if before.release.version != release.version and release.revision:
                    self.redeployments.append(Redeployment(
                        service, environment, release, before.release, event.sha, event.time,
                        manifest))
                self.current[(service, environment)] = DeployedState(
                    service, environment, release, manifest, before.gitops_commit,
                    before.deployed_at)
                continue
            self.deployments.append(Deployment(
                service, environment, release,
                before.release if before else self.gone.pop((service, environment), None),
                event.sha, event.time, manifest))
            self.current[(service, environment)] = DeployedState(
                service, environment, release, manifest, event.sha, event.time)

    def _remaining(self, before: DeployedState,
                   by_unit: Mapping[str, tuple[Release, str]]) -> None:
        """A service's state when a unit giving it was taken away while others remain: as it
        was if its unit remains, else the latest deployment one of the remaining units runs."""
        left = list(by_unit.values())
        if any(m == before.manifest and r.same_as(before.release) for r, m in left):
            return
        key = (before.service, before.environment)
        last = next((d for d in reversed(self.deployments) if (d.service, d.environment) == key
                     and any(m == d.manifest and r.same_as(d.release) for r, m in left)), None)
        if last is not None:
            release, manifest = next((r, m) for r, m in left
                                     if m == last.manifest and r.same_as(last.release))
            self.current[key] = DeployedState(key[0], key[1], release, manifest,
                                              last.gitops_commit, last.time)
        else:
            release, manifest = _release_of(by_unit, set()) or (before.release, before.manifest)
            self.current[key] = DeployedState(key[0], key[1], release, manifest,
                                              before.gitops_commit, before.deployed_at)

    def _manifest_path(self, unit: str) -> str:
        """Where a unit's images are written, for people: its kustomization, or the file, or
        the folder."""
        if self.units[unit].is_file:
            return unit
        return next((p for p in sorted(self.children.get(unit, ()))
                     if posixpath.basename(p) in KUSTOMIZATION_FILES), unit + "/")

    def _release(self, use: ImageUse, service: str) -> Release | None:
        version = f"{use.tag}@{use.digest}" if use.tag and use.digest else use.version
        if not version:
            return None
        revision = revision_in_tag(use.tag)
        if revision and is_digits_only(revision) and not self.digits.get((service, revision)):
            revision = None
        return Release(version=version, revision=revision)

    # -- what the commands see -------------------------------------------------------------

    def third_party_at_head(self) -> list[ThirdParty]:
        third = self.decisions.third_party if self.decisions else frozenset()
        bases = self.decisions.bases if self.decisions else frozenset()
        found = []
        for unit, images in sorted(self.unit_images.items()):
            if unit in bases:
                continue
            for use in images:
                if use.repository in third and use.version:
                    found.append(ThirdParty(use.repository or use.key,
                                            self.units[unit].environment, use.version, unit))
        return found

    def owners(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """Of each unit (a folder, or an environment file) at the head: the services and
        environment it gives, before aliases are applied by the caller's view."""
        return {unit: tuple((service, self.units[unit].environment)
                            for service in sorted(services))
                for unit, services in self.unit_services.items() if services}

    def broken_owners(self) -> dict[str, set[str]]:
        """Of each file broken at the head: the units that read it."""
        return {path: set(self.dep_units.get(path, ())) for path in self.broken}

    def unread_files(self) -> list[str]:
        """Files at the head that set images but no unit reads: what came closest when nothing
        was found, and what `status` lists as not read."""
        read = {path for path, units in self.dep_units.items() if units}
        return sorted(self.imageful - read)

    # -- kept between runs -----------------------------------------------------------------

    def dump(self, *, deployments: bool = True) -> dict[str, Any]:
        """The state as JSON: tables of rows, releases shared through one list; without its
        deployments (an empty table) when they are kept as rows (`deployment_rows`)."""
        releases: dict[Release, int] = {}

        def ref(release: Release | None) -> int | None:
            if release is None:
                return None
            return releases.setdefault(release, len(releases))

        def use_row(use: ImageUse) -> list[Any]:
            return [use.key, use.repository, use.tag, use.digest, use.use]

        def when(moment: datetime) -> int:
            return int(moment.timestamp())

        decisions = self.decisions or Decisions(frozenset(), frozenset(), {})
        body: dict[str, Any] = {
            "fingerprint": self.fingerprint, "head": self.head,
            "tree": self.tree,
            "units": [[u, w.environment, w.service, w.is_file] for u, w in self.units.items()],
            "unit_images": {u: [use_row(i) for i in images]
                            for u, images in self.unit_images.items()},
            "dep_units": {p: sorted(units) for p, units in self.dep_units.items()},
            "referenced": sorted(self.referenced),
            "held": {u: [[list(pair) for pair in held] for held in sets]
                     for u, sets in self.held.items()},
            "repositories": self.repositories,
            "imageful": sorted(self.imageful),
            "third_party": sorted(decisions.third_party),
            "bases": sorted(decisions.bases),
            "rules": {u: dict(rule) for u, rule in decisions.rules.items()},
            "decided": self.decisions is not None,
            "digits": [[s, tag, was] for (s, tag), was in self.digits.items()],
            "releases_by_unit": [[s, e, u, ref(r), m] for (s, e), by in self.releases.items()
                                 for u, (r, m) in by.items()],
            "current": [[c.service, c.environment, ref(c.release), c.manifest, c.gitops_commit,
                         when(c.deployed_at)] for c in self.current.values()],
            "gone": [[s, e, ref(r)] for (s, e), r in self.gone.items()],
            "deployments": [[d.service, d.environment, ref(d.release), ref(d.previous),
                             d.gitops_commit, when(d.time), d.manifest]
                            for d in (self.deployments if deployments else ())],
            "redeployments": [[d.service, d.environment, ref(d.release), ref(d.previous),
                               d.gitops_commit, when(d.time), d.manifest]
                              for d in self.redeployments],
            "skipped": [[s.path, s.commit, s.reason] for s in self.skipped],
            "broken": [[s.path, s.commit, s.reason] for s in self.broken.values()],
        }
        body["release_table"] = [[r.version, r.revision] for r in releases]
        return body

    def deployment_rows(self, start: int = 0) -> list[Sequence[Any]]:
        """The deployments from position `start` on, as rows (service, environment, version,
        revision, previous version and revision, GitOps commit, time, manifest)."""
        return self.deployments.rows(start)

    @classmethod
    def load(cls, data: Mapping[str, Any], fingerprint: str,
             rows: Sequence[Sequence[Any]] | None = None) -> ReaderState | None:
        """The state from the cache, or None when it is of other settings or not of the shape
        `dump` writes (a damaged cache is read as nothing: the history is read again). `rows`:
        its deployments as `deployment_rows` gives them (then not in `data`)."""
        if data.get("fingerprint") != fingerprint:
            return None
        try:
            return cls._load(data, fingerprint, rows)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, OverflowError):
            return None

    @classmethod
    def _load(cls, data: Mapping[str, Any], fingerprint: str,
              kept: Sequence[Sequence[Any]] | None) -> ReaderState:
        state = cls(fingerprint)
        state.head = _opt_text(data["head"])
        table = [Release(_text(v), _opt_text(r)) for v, r in _rows(data["release_table"], 2)]

        def release(index: object) -> Release:
            if not isinstance(index, int) or isinstance(index, bool):
                raise TypeError("release index")
            return table[index]

        def moment(value: object) -> datetime:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError("time")
            return datetime.fromtimestamp(value, UTC)

        state.tree = {_text(p): _text(b) for p, b in _mapping(data["tree"]).items()}
        for path in state.tree:
            state.children[posixpath.dirname(path)].add(path)
        for unit, environment, service, is_file in _rows(data["units"], 4):
            state.units[_text(unit)] = Location(_text(unit), _text(environment),
                                                _opt_text(service), _flag(is_file))
        for unit, rows in _mapping(data["unit_images"]).items():
            state.unit_images[_text(unit)] = tuple(
                ImageUse(_text(k), _opt_text(r), _opt_text(t), _opt_text(d), _text(u))
                for k, r, t, d, u in _rows(rows, 5))
        for path, units in _mapping(data["dep_units"]).items():
            state.dep_units[_text(path)] = {_text(u) for u in _list(units)}
        state.referenced = {_text(f) for f in _list(data["referenced"])}
        for unit, sets in _mapping(data["held"]).items():
            state.held[_text(unit)] = [tuple((_text(k), _opt_text(r)) for k, r in _rows(held, 2))
                                       for held in _list(sets)]
        state.repositories = {_text(r): _flag(v)
                              for r, v in _mapping(data["repositories"]).items()}
        state.imageful = {_text(p) for p in _list(data["imageful"])}
        if _flag(data["decided"]):
            state.decisions = Decisions(
                frozenset(_text(r) for r in _list(data["third_party"])),
                frozenset(_text(u) for u in _list(data["bases"])),
                {_text(u): {_text(k): _text(s) for k, s in _mapping(rule).items()}
                 for u, rule in _mapping(data["rules"]).items()})
        state.digits = {(_text(s), _text(t)): _flag(w) for s, t, w in _rows(data["digits"], 3)}
        for service, environment, unit, index, manifest in _rows(data["releases_by_unit"], 5):
            state.releases[(_text(service), _text(environment))][_text(unit)] = (
                release(index), _text(manifest))
            state.unit_services[_text(unit)].add(_text(service))
        for s, e, index, manifest, commit, at in _rows(data["current"], 6):
            state.current[(_text(s), _text(e))] = DeployedState(
                _text(s), _text(e), release(index), _text(manifest), _text(commit), moment(at))
        state.gone = {(_text(s), _text(e)): release(index)
                      for s, e, index in _rows(data["gone"], 3)}
        state.deployments = Deployments(releases=table)
        for s, e, r, p, c, at, m in _rows(data["deployments"], 7):  # the longest table: inline
            if not (type(s) is type(e) is type(c) is type(m) is str
                    and type(r) is type(at) is int and (p is None or type(p) is int)):
                raise TypeError("deployment")
            state.deployments.append(Deployment(s, e, table[r], None if p is None else table[p],
                                                c, datetime.fromtimestamp(at, UTC), m))
        if kept is not None:
            if state.deployments:
                raise ValueError("deployments both in the body and as rows")
            state.deployments = Deployments.of_rows(kept, table)
            state.kept = len(state.deployments)
        state.redeployments = [
            Redeployment(_text(s), _text(e), release(r), release(p), _text(c), moment(at),
                         _text(m))
            for s, e, r, p, c, at, m in _rows(data["redeployments"], 7)]
        state.skipped = [Skipped(_text(p), _text(c), _text(r))
                         for p, c, r in _rows(data["skipped"], 3)]
        state.broken = {_text(p): Skipped(_text(p), _text(c), _text(r))
                        for p, c, r in _rows(data["broken"], 3)}
        return state


_TIMES = range(-62_135_596_800, 253_402_300_800)  # seconds of the years 1 to 9999 (UTC)


@runtime_checkable
class BatchedRows(Protocol):
    """Deployment rows read back a batch at a time (`store.KeptRows`): `pairs` known without
    reading them (None when not known)."""

    pairs: set[tuple[str, str]] | None

    def __len__(self) -> int: ...

    def take(self, position: int) -> tuple[int, list[Any]]:
        """The batch holding `position`: its first position and its rows, handed over (not
        kept there any more: the rows are let go as they are built)."""
        ...

    def damaged(self) -> None:
        """A batch's rows are not of the shape written: the next read starts again."""
        ...


_UNREAD = object()  # a row in a batch not read yet (`Deployments._rows`)
_DAMAGED = ("the GitOps reader's kept deployments are not of the shape written; they are read "
            "again next run")


class Deployments(Sequence[Deployment]):
    """A reader state's deployments, in order. Those read back from the store stay rows
    (`ReaderState.deployment_rows`' shape, checked as they are read) until one is first used:
    a collection that goes on from a kept past uses the few after its cut, not the years
    before; rows kept in batches whose checksums held are read (parsed and checked) a batch at
    a time, when one of the batch's is first used. Deployments are only ever added; `view` is
    the first ones as they are now (a history keeps it while the state goes on)."""

    def __init__(self, releases: Iterable[Release] = ()) -> None:
        """None yet (`of_rows`: those read back)."""
        # None: built (added as a Deployment, or built from its row); _UNREAD: in a batch not
        # read yet (`_batches`)
        self._rows: list[Any] = []
        self._built: list[Deployment | None] = []
        # one object a release (as a state read commit by commit has)
        self._releases = {(r.version, r.revision): r for r in releases}
        self._length = 0  # a view's stays; the state's grows
        self._view = False
        self._pairs: set[tuple[str, str]] = set()
        self._batches: BatchedRows | None = None
        # one string a name, and a manifest's latest row (`_checked`), for batches read later
        self._names: dict[str, str] = {}
        self._last: dict[str, list[Any]] = {}
        self._reading = threading.Lock()

    @classmethod
    def of_rows(cls, rows: Sequence[Sequence[Any]], table: Sequence[Release]) -> Deployments:
        """The deployments of `deployment_rows`' rows, each checked now (TypeError, ValueError:
        a damaged store is read as nothing), built when first used; rows in batches that know
        their pairs (`BatchedRows`) are checked as each batch is read."""
        deployments = cls(table)
        if isinstance(rows, BatchedRows) and rows.pairs is not None:
            deployments._rows = [_UNREAD] * len(rows)
            deployments._batches, deployments._pairs = rows, set(rows.pairs)
        else:
            deployments._rows = list(rows)
            _checked(deployments._rows, deployments._names, deployments._last,
                     deployments._pairs)
        deployments._built = [None] * len(deployments._rows)
        deployments._length = len(deployments._rows)
        return deployments

    def _read(self, position: int) -> None:
        """Read the batch of rows holding `position` (as `of_rows` reads rows). Its checksum
        held: a row of the wrong shape was written so (a devex bug) or edited checksum and all;
        the state is then forgotten (the next read starts again) and ValueError raised."""
        assert self._batches is not None  # (an unread row is in a batch)
        with self._reading:
            if self._rows[position] is _UNREAD:
                try:
                    first, rows = self._batches.take(position)  # (forgets them itself)
                except ValueError:
                    raise ValueError(_DAMAGED) from None
                try:
                    _checked(rows, self._names, self._last, set())
                except (TypeError, ValueError):
                    self._batches.damaged()
                    raise ValueError(_DAMAGED) from None
                self._rows[first:first + len(rows)] = rows

    def view(self) -> Deployments:
        """The deployments there are now, as they stay whatever is added after."""
        view = Deployments.__new__(Deployments)
        view._rows, view._built, view._releases = self._rows, self._built, self._releases
        view._length, view._view, view._pairs = self._length, True, set(self._pairs)
        view._batches, view._names, view._last = self._batches, self._names, self._last
        view._reading = self._reading
        return view

    def append(self, deployment: Deployment) -> None:
        if self._view:
            raise TypeError("a view of deployments is not added to")
        self._rows.append(None)
        self._built.append(deployment)
        self._length += 1
        self._pairs.add((deployment.service, deployment.environment))

    def pairs(self) -> set[tuple[str, str]]:
        """The (service, environment) of the deployments, without building them."""
        return set(self._pairs)

    def rows(self, start: int = 0) -> list[Sequence[Any]]:
        """From position `start` on, as `ReaderState.deployment_rows` gives them."""
        rows = []
        for position in range(start, len(self)):
            if self._rows[position] is _UNREAD:
                self._read(position)
            row = self._rows[position]
            rows.append(row if row is not None else _row(self[position]))
        return rows

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Deployment: ...

    @overload
    def __getitem__(self, index: slice) -> list[Deployment]: ...

    def __getitem__(self, index: int | slice) -> Deployment | list[Deployment]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not 0 <= index < self._length:
            if not -self._length <= index < 0:
                raise IndexError("deployment position out of range")
            index += self._length
        built = self._built[index]
        if built is None:
            row = self._rows[index]
            if row is _UNREAD:
                self._read(index)
                row = self._rows[index]
            if row is None:  # built meanwhile (another thread)
                return self._built[index]  # type: ignore[return-value]
            built = self._built[index] = self._build(row)
            self._rows[index] = None  # the deployment holds what the row said (`_row`)
        return built

    def __iter__(self) -> Iterator[Deployment]:
        for position in range(len(self)):
            yield self[position]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Deployments({len(self)})"

    def _build(self, row: Sequence[Any] | None) -> Deployment:
        assert row is not None  # (an added deployment is built already)
        s, e, version, revision, old_version, old_revision, c, at, m = row
        releases = self._releases
        release = releases.get((version, revision))
        if release is None:
            release = releases[(version, revision)] = Release(version, revision)
        previous = None
        if old_version is not None:
            previous = releases.get((old_version, old_revision))
            if previous is None:
                previous = releases[(old_version, old_revision)] = Release(old_version,
                                                                           old_revision)
        # (names are one string each already: `of_rows`)
        return Deployment(s, e, release, previous, c, datetime.fromtimestamp(at, UTC), m)


def _checked(rows: list[Any], names: dict[str, str], last: dict[str, list[Any]],
             pairs: set[tuple[str, str]]) -> None:
    """Check `deployment_rows`' rows read back (TypeError for one of another shape), making
    each name one string (`names`), and a release's tag and revision one string for it and for
    the next deployment of its manifest (`last`: by manifest, the row of its latest deployment;
    a row has its own copies: most of a state's memory); their (service, environment) pairs
    are added to `pairs`."""
    for row in rows:
        s, e, version, revision, old_version, old_revision, c, at, m = row
        if not (type(row) is list  # (the store's rows are JSON arrays: shared in place)
                and type(s) is type(e) is type(c) is type(m) is type(version) is str
                and type(at) is int and at in _TIMES
                and (revision is None or type(revision) is str)
                and (old_version is None or type(old_version) is str)
                and (old_revision is None or type(old_revision) is str)
                and (old_version is not None or old_revision is None)):
            raise TypeError("deployment row")
        row[0], row[1], row[8] = s, e, m = (names.setdefault(s, s), names.setdefault(e, e),
                                            names.setdefault(m, m))
        before = last.get(m)
        if before is not None and old_version == before[2] and old_revision == before[3]:
            row[4], row[5] = before[2], before[3]
        last[m] = row
        pairs.add((s, e))


def _row(d: Deployment) -> tuple[Any, ...]:
    """A deployment as `ReaderState.deployment_rows` gives it."""
    return (d.service, d.environment, d.release.version, d.release.revision,
            d.previous.version if d.previous else None,
            d.previous.revision if d.previous else None,
            d.gitops_commit, int(d.time.timestamp()), d.manifest)


def _over(base: tuple[ImageUse, ...], top: tuple[ImageUse, ...]) -> tuple[ImageUse, ...]:
    """An environment file's images over its folder's shared ones, by key: a Helm `image.tag`
    alone takes its repository from the shared values."""
    merged = {u.key: u for u in base}
    for use in top:
        below = merged.get(use.key)
        if below is not None and use.repository is None:
            use = ImageUse(use.key, below.repository, use.tag, use.digest, use.use)
        merged[use.key] = use
    return tuple(sorted(merged.values(), key=lambda u: u.key))


def _image_name(key: str, repository: str | None) -> str:
    """An image's name for naming a service: a kustomize entry's `name` (whatever registry its
    `newName` moves it to), a container's repository, a Helm value's repository."""
    return repository or key if key.startswith("helm:") else split_reference(key)[0]


def _write_back(path: str) -> bool:
    return posixpath.basename(path).startswith(".argocd-source")


def _release_of(by_unit: Mapping[str, tuple[Release, str]],
                changed: set[str]) -> tuple[Release, str] | None:
    """The release a service has in an environment after a commit: of the units giving it, the
    one the commit changed wins."""
    if not by_unit:
        return None
    _, unit = min((unit not in changed, unit) for unit in by_unit)
    return by_unit[unit]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("text")
    return value


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError("flag")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("list")
    return value


def _mapping(value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("mapping")
    return value


def _rows(value: object, width: int) -> list[list[Any]]:
    rows = _list(value)
    for item in rows:
        if not isinstance(item, list) or len(item) != width:
            raise TypeError("row")
    return rows
