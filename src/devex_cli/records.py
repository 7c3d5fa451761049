"""Deployment records: each GitOps deployment with its change set, kept between runs.

A change set (`git rev-list PREVIOUS..NEW`) never changes once both revisions are known, so a
complete record is kept in the cache with the commits it names. A later collection computes only
the deployments it has not seen, and asks an app source (a local repository or Bitbucket) only
for those: its cost grows with new deployments, not with the length of the history.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devex_cli.cache import (
    BOOLEAN,
    INTEGER,
    LIST,
    MAPPING,
    TEXT,
    JsonCache,
    fields,
    list_of,
    optional,
    row,
)
from devex_cli.changes import TicketRule
from devex_cli.config import Settings, bitbucket_workspace
from devex_cli.dora.model import Change, DeploymentRecord
from devex_cli.errors import DevexError
from devex_cli.parallel import SERVICES_AT_ONCE, each
from devex_cli.sources import gitops
from devex_cli.sources.commitgraph import GraphCommit
from devex_cli.store import RecordStore, text_keys

if TYPE_CHECKING:
    from devex_cli.sources.base import CommitSource, SourceHealth

log = logging.getLogger("devex.records")

_VERSION = 2  # of the JSON file earlier versions kept (collect-records.json), moved to the store
# Checked whole on load: the parts. Entry by entry as they are read: the rows, a damaged one
# being computed again (the records are too many to check each on every collection).
_SHAPE = fields(fingerprint=TEXT, records=MAPPING, commits=MAPPING, ranges=MAPPING)
# full revision, change set, ancestry's rollback verdict (null: ancestry could not tell)
_RECORD = row(optional(TEXT), optional(LIST), optional(BOOLEAN))
_COMMIT = row(INTEGER, list_of(TEXT), BOOLEAN)  # author time, tickets, merge
_SHAS = list_of(TEXT)
# What the store can hold of the JSON file's entries (SHAs as text, a time SQLite's INTEGER holds)
_STORABLE_RECORD = row(optional(TEXT), optional(_SHAS), optional(BOOLEAN))
_INT64 = range(-2**63, 2**63)
_VERDICTS = {None: None, 0: False, 1: True}  # ancestry's verdict as the store keeps it

# (service, environment) -> the commits that environment runs and production does not
Pending = dict[tuple[str, str], tuple[Change, ...]]


@dataclass(frozen=True)
class Records:
    records: list[DeploymentRecord]
    pending: Pending
    not_found: set[tuple[str, str]]  # (service, revision) the app source does not have
    computed: int  # deployments whose change set was computed this run (the rest: cache)
    # deployments (`record_key`) whose record may still change: not kept although their service
    # has an app source configured (it failed or was not asked this run: --offline, no Bitbucket
    # token, a clone that failed; or a revision was not found)
    unsettled: set[str] = field(default_factory=set)


class RecordCache:
    """Complete records by deployment, the commits they name, and the pending ranges: read from
    the store (`store.RecordStore`) at the start of a run; what the run adds is written to it at
    the end, as new rows. With `only` (deployment keys, `record_key`), only those records are
    read, and the commits they name; the pending ranges are read as `want_ranges` asks."""

    def __init__(self, settings: Settings, only: Collection[str] | None = None) -> None:
        self.fingerprint = record_fingerprint(settings)
        folder = settings.cache_dir()
        self.store = RecordStore(folder, self.fingerprint)
        self.partial = only is not None
        self.records, self.commits, self.ranges = (
            self.store.load() if only is None else self.store.load_some(only, ()))
        # what this run adds (or replaces: a damaged entry computed again), written by save()
        self._new_records: set[str] = set()
        self._new_commits: set[str] = set()
        self._new_ranges: set[str] = set()
        self._legacy = JsonCache(folder, "collect-records", version=_VERSION, shape=_SHAPE,
                                 grows_only=False)
        if not self.partial and not self.records and self._legacy.path.exists():
            self._adopt_legacy()
        self._changes: dict[str, Change] | None = None

    def _adopt_legacy(self) -> None:
        """The records of the JSON file earlier versions kept, moved into the store."""
        data = self._legacy.load()
        if data.get("fingerprint") != self.fingerprint:
            return
        self.records = {k: v for k, v in data.get("records", {}).items()
                        if _STORABLE_RECORD(v)}
        self.commits = {k: v for k, v in data.get("commits", {}).items()
                        if _COMMIT(v) and v[0] in _INT64}
        self.ranges = {k: v for k, v in data.get("ranges", {}).items() if _SHAS(v)}
        self._new_records.update(self.records)
        self._new_commits.update(self.commits)
        self._new_ranges.update(self.ranges)

    @property
    def changed(self) -> bool:
        return bool(self._new_records or self._new_commits or self._new_ranges)

    def want_ranges(self, keys: Collection[str]) -> None:
        """Read the pending ranges of these keys, and their commits (all are read already
        unless only some records were)."""
        if not self.partial:
            return
        _, commits, ranges = self.store.load_some((), [k for k in keys if k not in self.ranges])
        fresh = {sha: entry for sha, entry in commits.items() if sha not in self.commits}
        self.commits.update(fresh)
        self.ranges.update(ranges)
        if self._changes is not None:
            _build(fresh, self._changes)

    def _built(self) -> dict[str, Change]:
        """Every kept commit as a Change, built once (a damaged entry is left out)."""
        if self._changes is None:
            self._changes = {}
            _build(self.commits, self._changes)
        return self._changes

    def change(self, sha: str) -> Change | None:
        return self._built().get(sha)

    def changes(self, shas: Iterable[str]) -> tuple[Change, ...] | None:
        """The commits of a kept change set; None when one of them is missing (a damaged
        cache): the record is computed again."""
        built = self._changes if self._changes is not None else self._built()  # once a record
        try:
            return tuple(map(built.__getitem__, shas))
        except (KeyError, TypeError):
            return None

    def keep_changes(self, changes: Iterable[Change]) -> list[str]:
        shas = []
        for change in changes:
            if change.sha not in self._built():  # new, or replacing a damaged entry
                self.commits[change.sha] = [int(change.author_time.timestamp()),
                                            list(change.tickets), change.merge]
                self._new_commits.add(change.sha)
                self._built()[change.sha] = change
            shas.append(change.sha)
        return shas

    def keep_record(self, key: str, entry: list[Any]) -> None:
        self.records[key] = entry
        self._new_records.add(key)

    def keep_range(self, key: str, shas: list[str]) -> None:
        self.ranges[key] = shas
        self._new_ranges.add(key)

    def save(self) -> None:
        """Write what this run added, as rows added to the store (nothing when nothing was)."""
        if not self.changed:
            return
        self.store.add(((k, self.records[k]) for k in self._new_records),
                       ((k, self.commits[k]) for k in self._new_commits),
                       ((k, self.ranges[k]) for k in self._new_ranges))
        if self._legacy.path.exists():  # its records are in the store now (or computed again)
            with contextlib.suppress(OSError):
                self._legacy.path.unlink()
        self._new_records.clear()
        self._new_commits.clear()
        self._new_ranges.clear()


def _build(commits: Mapping[str, Any], built: dict[str, Change]) -> None:
    """Kept commits (store rows, or entries of this run or the JSON file of old) as Changes
    into `built`; a damaged entry is left out."""
    for sha, entry in commits.items():
        if type(entry) is tuple:  # the store's row: sha, time, tickets in one text, merge
            _, seconds, text, flag = entry
            keys = text_keys(text) if type(text) is str else None
            if type(seconds) is not int or keys is None or flag not in (0, 1):
                continue
            tickets, merge = tuple(keys), flag == 1
        elif _COMMIT(entry):  # kept by this run, or by the JSON file of old
            seconds, tickets, merge = entry[0], tuple(entry[1]), entry[2]
        else:
            continue
        try:
            when = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            continue
        built[sha] = Change(sha, when, tickets, merge=merge)


def _has_source(settings: Settings, service: str) -> bool:
    """Whether a service has an app source configured (its repository, or Bitbucket: a
    workspace, with or without the token this run has)."""
    configured = settings.services.get(service)
    return bool(configured is not None and configured.repo) or bool(
        bitbucket_workspace(settings))


def record_fingerprint(settings: Settings) -> str:
    """What a configuration's records depend on (its ticket rule, projects, workspace and
    services): configurations with the same one share their records."""
    return repr((
        settings.jira.ticket_pattern, settings.jira.projects, bitbucket_workspace(settings),
        sorted((name, s.repo, s.bitbucket_repo) for name, s in settings.services.items()),
    ))


def record_key(deployment: gitops.Deployment) -> str:
    """A deployment's key in the store: the GitOps commit, service and environment."""
    return f"{deployment.gitops_commit} {deployment.service} {deployment.environment}"


def build_records(
    history: gitops.GitOpsHistory,
    source_of: Callable[[str], CommitSource | None],
    settings: Settings,
    health: SourceHealth,
    cache: RecordCache,
    positions: Collection[int] | None = None,
) -> Records:
    """Deployment records with change sets and ancestry's rollback verdicts (kept ones from
    the cache, new ones from the app sources); the commits each environment before production
    has and production does not; the deployed revisions missing from the app sources.
    `positions`: the deployments (by position in the history) to make records of, all by
    default; the records are in the history's order.

    `source_of(service)` gives the service's app source (None: none configured); a source that
    fails is marked down in `health` and leaves that service's change sets unknown this run.
    """
    rule = TicketRule(settings)
    made: dict[str, Change] = {}

    def change(commit: GraphCommit) -> Change:
        found = made.get(commit.sha) or cache.change(commit.sha)
        if found is None:
            found = made[commit.sha] = Change(
                commit.sha, commit.author_time,
                tuple(rule.keys([commit.message])),
                merge=commit.is_merge)
        return found

    kept: dict[int, DeploymentRecord] = {}  # by position in the history
    full: dict[tuple[str, str], str | None] = {}
    new = []
    wanted = range(len(history.deployments)) if positions is None else sorted(positions)
    for position in wanted:
        deployment = history.deployments[position]
        entry = cache.records.get(record_key(deployment))
        record = _from_cache(deployment, entry, cache) if entry is not None else None
        if record is None:
            new.append(deployment)
            continue
        kept[position] = record
        if deployment.release.revision and record.revision:
            full[(deployment.service, deployment.release.revision)] = record.revision

    graphs: dict[str, CommitSource] = {}
    failed: set[str] = set()

    current: dict[str, list[tuple[str, str]]] = {}  # each service's (service, environment)s
    for key in history.current:
        current.setdefault(key[0], []).append(key)
    resolved_before: dict[str, dict[str, str | None]] = {}  # each service's, from kept records
    for (owner, short), sha in full.items():
        resolved_before.setdefault(owner, {})[short] = sha

    def prepared(service: str, mine: list[gitops.Deployment]) -> dict[str, str | None]:
        """Resolve a service's revisions and fetch (or load) its change sets."""
        graph = graphs[service]
        revisions = [r for d in reversed(mine)  # newest first: a graph is listed from those
                     for r in (d.release.revision, d.previous.revision if d.previous else None)
                     if r and (service, r) not in full]
        resolved = graph.resolve(dict.fromkeys(revisions))
        known = {**resolved_before.get(service, {}), **resolved}
        # the commits waiting for production, asked beside the change sets (one round trip), and
        # first: a change set from the same revision is taken from them when it can be
        pairs = [pair for key, pair in _pending_ranges(
            history, {(service, short): sha for short, sha in known.items()}, set(),
            current.get(service, ())).items() if _range_key(key, pair) not in cache.ranges]
        pairs.extend((n, o) for d in mine
                     if (n := known.get(d.release.revision or ""))
                     and (o := known.get(d.previous.revision if d.previous and
                                         d.previous.revision else "")))
        graph.prepare(pairs)
        return resolved

    # the pending ranges known before anything is resolved: read, so none is asked again
    cache.want_ranges([_range_key(key, pair)
                       for key, pair in _pending_ranges(history, full, set()).items()])
    by_service: dict[str, list[gitops.Deployment]] = {}
    for deployment in new:
        by_service.setdefault(deployment.service, []).append(deployment)
    for service in by_service:
        graph = source_of(service)
        if graph is not None:
            graphs[service] = graph
    def attempt(service: str) -> dict[str, str | None] | DevexError:
        try:
            return prepared(service, by_service[service])
        except DevexError as exc:
            return exc

    for service, result in zip(graphs, each(attempt, graphs, limit=SERVICES_AT_ONCE),
                               strict=True):
        if isinstance(result, DevexError):
            log.warning("%s; change sets of %s are unknown this run", result, service)
            health.failed(graphs[service].system, str(result))
            failed.add(service)
        else:
            full.update({(service, short): sha for short, sha in result.items()})
    records = []
    unsettled = set()
    for position in wanted:
        deployment = history.deployments[position]
        record = kept.get(position)
        if record is None:
            graph = None if deployment.service in failed else graphs.get(deployment.service)
            record = _computed(deployment, graph, full, change, cache)
            if record_key(deployment) not in cache.records and _has_source(settings,
                                                                           deployment.service):
                unsettled.add(record_key(deployment))
        records.append(record)
    not_found = {key for key, sha in full.items() if sha is None}
    pending = _pending(history, source_of, graphs, failed, full, change, cache)
    return Records(records, pending, not_found, computed=len(new), unsettled=unsettled)


def _from_cache(deployment: gitops.Deployment, entry: Sequence[Any],
                cache: RecordCache) -> DeploymentRecord | None:
    if type(entry) is tuple:  # the store's row: key, revision, SHAs in one text, verdict 0/1
        _, revision, text, verdict = entry
        if (text is not None and type(text) is not str) or verdict not in _VERDICTS or (
                revision is not None and type(revision) is not str):
            return None
        shas, ancestry_rollback = None if text is None else text.split(), _VERDICTS[verdict]
    elif _RECORD(entry):  # kept by this run, or by the JSON file of old
        revision, shas, ancestry_rollback = entry
    else:
        return None
    change_set = cache.changes(shas) if shas is not None else None
    if shas is not None and change_set is None:
        return None
    return DeploymentRecord(
        service=deployment.service, environment=deployment.environment,
        revision=revision or deployment.release.revision, version=deployment.release.version,
        time=deployment.time, gitops_commit=deployment.gitops_commit, change_set=change_set,
        ancestry_rollback=ancestry_rollback)


def _computed(deployment: gitops.Deployment, graph: CommitSource | None,
              full: Mapping[tuple[str, str], str | None],
              change: Callable[[GraphCommit], Change], cache: RecordCache) -> DeploymentRecord:
    """A new deployment's record; kept in the cache when nothing about it can still change."""
    short = deployment.release.revision
    previous = deployment.previous.revision if deployment.previous else None
    new = full.get((deployment.service, short or ""))
    old = full.get((deployment.service, previous or ""))
    change_set: tuple[Change, ...] | None = None
    ancestry_rollback: bool | None = None  # the GitOps history decides (dora.rollbacks)
    if graph is not None and new and old:
        commits = graph.only_in(new, old)
        change_set = tuple(change(c) for c in reversed(commits))
        ancestry_rollback = not commits and new != old
    # nothing about it can change: no commit named, or its change set known (or not needed)
    complete = short is None or (new is not None and (previous is None or change_set is not None))
    if graph is not None and complete:
        cache.keep_record(record_key(deployment), [
            new, None if change_set is None else cache.keep_changes(change_set),
            ancestry_rollback])
    return DeploymentRecord(
        service=deployment.service, environment=deployment.environment,
        revision=new or short, version=deployment.release.version, time=deployment.time,
        gitops_commit=deployment.gitops_commit, change_set=change_set,
        ancestry_rollback=ancestry_rollback)


def _range_key(key: tuple[str, str], pair: tuple[str, str]) -> str:
    """A pending range's key in the store: the service, its revision and production's."""
    return f"{key[0]} {pair[0]}..{pair[1]}"


def _pending_ranges(history: gitops.GitOpsHistory, full: Mapping[tuple[str, str], str | None],
                    failed: set[str], keys: Iterable[tuple[str, str]] | None = None
                    ) -> dict[tuple[str, str], tuple[str, str]]:
    """Per (service, environment) before production whose revisions `full` knows (of `keys`,
    else every current state's): the range (its revision, production's) of the commits
    waiting for production."""
    production = history.production
    if production is None or production not in history.environments:
        return {}
    before = history.environments[: history.environments.index(production)]
    ranges: dict[tuple[str, str], tuple[str, str]] = {}
    for service, environment in history.current if keys is None else keys:
        state = history.current[(service, environment)]
        prod = history.state(service, production)
        if environment not in before or prod is None or service in failed:
            continue
        here = full.get((service, state.release.revision or ""))
        there = full.get((service, prod.release.revision or ""))
        if here and there:
            ranges[(service, environment)] = (here, there)
    return ranges


def _pending(
    history: gitops.GitOpsHistory,
    source_of: Callable[[str], CommitSource | None],
    graphs: dict[str, CommitSource],
    failed: set[str],
    full: Mapping[tuple[str, str], str | None],
    change: Callable[[GraphCommit], Change],
    cache: RecordCache,
) -> Pending:
    """Per (service, environment) before production: the commits it runs that production does
    not (`git rev-list PROD..ENV`), from the cache when that range was read before."""
    ranges = _pending_ranges(history, full, failed)
    found: Pending = {}
    wanted: dict[str, list[tuple[tuple[str, str], tuple[str, str]]]] = {}
    cache.want_ranges([_range_key(key, pair) for key, pair in ranges.items()])
    for key, (here, there) in ranges.items():
        shas = cache.ranges.get(_range_key(key, (here, there)))
        changes = cache.changes(shas) if isinstance(shas, list) else None
        if changes is not None:
            found[key] = changes
        else:
            wanted.setdefault(key[0], []).append((key, (here, there)))
    for service in wanted:
        if service not in graphs and (graph := source_of(service)) is not None:
            graphs[service] = graph
    asked = [s for s in wanted if s in graphs]

    def read(service: str) -> list[tuple[tuple[str, str], tuple[Change, ...]]] | DevexError:
        graph, pairs = graphs[service], [pair for _, pair in wanted[service]]
        try:
            graph.prepare(pairs)
            return [(key, tuple(change(c) for c in reversed(graph.only_in(here, there))))
                    for key, (here, there) in wanted[service]]
        except DevexError as exc:
            return exc

    for service, answers in zip(asked, each(read, asked, limit=SERVICES_AT_ONCE), strict=True):
        if isinstance(answers, DevexError):
            log.warning("%s; tickets waiting for production in %s are unknown this run",
                        answers, service)
            continue
        for key, changes in answers:
            cache.keep_range(_range_key(key, ranges[key]), cache.keep_changes(changes))
            found[key] = changes
    return found
