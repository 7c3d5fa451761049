"""Which deployments a collection reads records of: those its windows need, when the store
keeps what the earlier ones left (`dora.past`).

Every window of a collection starts at or after `need` (its `--since`, and the longest standard
window before now). When the store has a past whose cut is at or before `need` and was taken
from exactly the deployments before the cut that the history has now (same GitOps commits,
services, environments and times, Argo CD's `deployedAt` included), a collection makes records
only of the deployments from the cut on, and of the few before it the figures read (each
environment's last one, those the current states name, and one of each revision they run), and
again of those before it whose records may still change (an app source that failed or was not
asked, a revision not found): the figures are the whole history's (tests/test_past.py,
tests/test_store.py, tests/test_horizon.py). Anything else (no past, a rewritten or re-dated
history, a window reaching further back, a record before the cut that is not what it was, a
kept past that does not read back) reads the whole history, and then keeps a new past for the
next runs, a day before `need` (used while within a month of it). Argo CD is not waited for to
plan: the past keeps the Argo CD times of the deployments before its cut, the plan is made with
them, and they are checked against Argo CD's answer once the records are made (any other time
before the cut reads the whole history).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from devex_cli.argocd_refine import DeploymentTimes
from devex_cli.config import Settings
from devex_cli.dora import past as kept
from devex_cli.dora.compute import LONGEST_WINDOW, FigureHistory, past_of
from devex_cli.dora.model import DeploymentRecord
from devex_cli.dora.past import Past
from devex_cli.records import record_fingerprint, record_key
from devex_cli.sources.gitops import Deployment, GitOpsHistory
from devex_cli.store import PastStore

log = logging.getLogger("devex.horizon")

# A new cut is this far before the earliest window start: a warm collection reads the records
# of about its windows (at 30 days, a quarter more); a cut further back than STALE is replaced
# (the whole history read once a month, as before, and never more than a month of extra records)
SLACK = timedelta(days=1)
STALE = timedelta(days=31)

_Key = tuple[str, str]


def earliest_start(start: datetime, now: datetime) -> datetime:
    """Where a collection's earliest window starts: its own, or the longest standard one's."""
    return min(start, now - LONGEST_WINDOW)


@dataclass
class Horizon:
    """A collection's cut: which deployments it makes records of (`positions`, None: all)."""

    store: PastStore
    history: GitOpsHistory
    times_of: Callable[[], DeploymentTimes]  # each deployment's time as its record has it
    need: datetime
    past: Past | None = None  # the kept past in use (its records and arrivals not yet read)
    positions: list[int] | None = None
    before: Mapping[_Key, int] | None = None  # the last position before the cut, per key
    validity: str | None = None  # of the kept past in use
    # the records before the cut that may still change (`Records.unsettled`), as the past was
    # taken with them (`_settled_form`), by position: made again and compared each run
    unsettled: Mapping[int, list[Any]] | None = None
    # Argo CD's times before the cut as the past was taken with them (`_guess`): the plan is
    # made with them, and they are checked against Argo CD's answer in `completed`
    refined: Mapping[str, Mapping[str, datetime]] | None = None
    # the deployments the kept past was taken from (`_Prefix`), when the plan went on from
    # them: the deployments before its cut are then found in the store, not read
    prefix: _Prefix | None = None
    _keys: list[str] | None = None  # `keys()`, made once

    @cached_property
    def argo(self) -> DeploymentTimes:
        """Each deployment's time as its record has it (Argo CD is waited for on first use:
        once the records of a kept past's plan are made, or when a past is kept)."""
        return self.times_of()

    @cached_property
    def times(self) -> list[datetime]:
        """Every deployment's time as its record has it (`argo`)."""
        return [self.argo.of(d) for d in self.history.deployments]

    def time_at(self, position: int) -> datetime:
        return self.argo.of(self.history.deployments[position])

    @classmethod
    def plan(cls, settings: Settings, repo: Path, history: GitOpsHistory,
             times_of: Callable[[], DeploymentTimes], need: datetime, *,
             whole: bool = False) -> Horizon:
        """The deployments a collection makes records of. `whole`: plan from the whole history
        even when the kept past says where the deployments before its cut are (tests compare
        both plans)."""
        name = hashlib.sha256(f"{repo.resolve()}\0{history.branch}\0"
                              f"{','.join(settings.collect.services)}".encode()).hexdigest()[:16]
        horizon = cls(PastStore(settings.cache_dir(), record_fingerprint(settings), name),
                      history, times_of, need)
        found = horizon.store.latest(int(need.timestamp()))
        if found is None:
            return horizon
        cut_seconds, validity, body, unsettled_text, refined_text, prefix_text = found
        try:
            past = kept.from_body(body)
            unsettled = _unsettled(unsettled_text)
            refined = _refined(refined_text)
        except ValueError as exc:
            log.info("the kept past is unreadable (%s): the whole history is read", exc)
            return horizon
        if need - past.cut > STALE:
            return horizon  # read whole once, and keep a nearer cut
        if int(past.cut.timestamp()) != cut_seconds:
            log.info("the kept past is unreadable (its cut): the whole history is read")
            return horizon
        # Argo CD is not waited for: its times before the cut as they were when the past was
        # taken; `completed` checks them once Argo CD has answered
        horizon.refined = refined
        if not prefix_text and history.reading is not None:
            log.info("the kept past is of an earlier devex (it does not say where its "
                     "deployments are): the whole history is read once, and one that does kept")
            return horizon
        prefix = None if whole else _prefix(prefix_text)
        if (prefix is not None and prefix.reading == history.reading
                and horizon._go_on(past, validity, prefix, unsettled)):
            return horizon
        times = _guess(history.deployments, refined)
        if validity != horizon._validity(past.cut, times):
            log.info("the history before %s changed: the whole history is read", past.cut)
            return horizon
        # Before the cut: each key's last deployment, the deployments current states name and
        # one of each revision they run as its tag has it (a redeployment's full SHA may be
        # another environment's old tag: pending compares those revisions, resolved from the
        # records of the deployments with them), and the records that may still change.
        named = {(s.service, s.environment, s.gitops_commit) for s in history.current.values()}
        running = {(s.service, s.release.revision) for s in history.current.values()
                   if s.release.revision}
        after, extra = [], []
        of_running: dict[tuple[str, str | None], int] = {}
        again: dict[int, list[Any]] = {}
        for position, (deployment, at) in enumerate(zip(history.deployments, times,
                                                        strict=True)):
            if at >= past.cut:
                after.append(position)
                continue
            if unsettled and (form := unsettled.get(record_key(deployment))) is not None:
                again[position] = form
            if (deployment.service, deployment.environment, deployment.gitops_commit) in named:
                extra.append(position)
            if (release := (deployment.service, deployment.release.revision)) in running:
                of_running[release] = position
        before = _last_before(history.deployments, times, past.cut)
        horizon.past, horizon.before, horizon.validity = past, before, validity
        horizon.unsettled = again
        horizon.positions = sorted({*after, *before.values(), *extra,
                                    *of_running.values(), *again})
        return horizon

    def _go_on(self, past: Past, validity: str, prefix: _Prefix,
               unsettled: Mapping[str, list[Any]]) -> bool:
        """Plan from the deployments the past was taken from (the reader state's first
        `prefix.count`, unchanged while it is the same) and those since, when every one since
        is at or after the cut: the deployments before it are then those the past was taken
        from, and where the plan needs some of them is in the store. False (the whole history
        plans) otherwise."""
        deployments, cut = self.history.deployments, past.cut
        count = prefix.count
        if len(deployments) < count or prefix.frame != _frame(self.history):
            return False
        assert self.refined is not None
        if any(_guessed(deployments[p], self.refined) < cut
               for p in range(count, len(deployments))):
            log.info("a deployment read since the past was kept is before its cut %s", cut)
            return False
        current = self.history.current.values()
        named = {f"{s.gitops_commit} {s.service} {s.environment}" for s in current}
        running = {f"{s.service} {s.release.revision}" for s in current
                   if s.release.revision}
        found = self.store.positions(int(cut.timestamp()), validity, prefix.text,
                                     {*named, *unsettled}, running)
        if found is None:
            return False
        by_key, last, rows = found
        if rows != prefix.rows:
            log.info("the kept past's positions are not all there: its plan is made again")
            return False
        try:
            at = {key: _position(p, count) for key, p in by_key}
            extra = [at[key] for key in named if key in at]
            of_running = {release: _position(p, count) for release, p in last}
            again = {at[key]: form for key, form in unsettled.items() if key in at}
            before = {key: _position(p, count) for key, p in prefix.before.items()}
        except ValueError as exc:
            log.info("the kept past is unreadable (%s): its plan is made again", exc)
            return False
        # each position is the deployment it is said to be (else: a damaged store)
        if (any(record_key(deployments[p]) != key for key, p in at.items())
                or any(_release(deployments[p].service, deployments[p].release.revision)
                       != release for release, p in of_running.items())
                or any((deployments[p].service, deployments[p].environment) != key
                       for key, p in before.items())):
            log.info("the kept past does not match the deployments: its plan is made again")
            return False
        after = [p for start, end in prefix.after for p in range(start, end)]
        self.past, self.before, self.validity, self.unsettled = past, before, validity, again
        self.prefix = prefix
        self.positions = sorted({*after, *range(count, len(deployments)), *before.values(),
                                 *extra, *of_running.values(), *again})
        return True

    def keys(self) -> list[str] | None:
        """The store keys of the records to read (None: all), in the order of `positions`."""
        if self.positions is None:
            return None
        if self._keys is None:
            self._keys = [record_key(self.history.deployments[p]) for p in self.positions]
        return self._keys

    def completed(self, records: Sequence[DeploymentRecord]) -> Past | None:
        """The kept past with the records before the cut (of `records`, made of `positions`)
        and the arrivals of the commits the records after it name; None when the kept arrivals
        do not read back (the whole history is read then, and the horizon forgets its past)."""
        assert self.past is not None and self.positions is not None and self.before is not None
        assert self.validity is not None and self.unsettled is not None
        cut = self.past.cut
        if not self._guessed_right(cut):
            log.info("Argo CD's times before %s are not those the past was taken with: the "
                     "whole history is read", cut)
            self._forget()
            return None
        by_position = dict(zip(self.positions, records, strict=True))
        changed = next((p for p, form in self.unsettled.items()
                        if _settled_form(by_position[p]) != form), None)
        if changed is not None:  # a source answered what it did not (or not as) before
            log.info("a deployment before %s has another record now (%s): the whole history "
                     "is read", cut, record_key(self.history.deployments[changed]))
            self._forget()
            return None
        named = {c.sha for p, r in by_position.items() if self.time_at(p) >= cut
                 for c in r.change_set or ()}
        rows = self.store.arrivals(int(cut.timestamp()), self.validity, named)
        try:
            if rows is None:
                raise ValueError("another collection replaced it")
            return kept.completed(self.past, {key: by_position[p] for key, p in
                                              self.before.items()}, rows)
        except ValueError as exc:
            log.info("the kept past is unreadable (%s): the whole history is read", exc)
            self._forget()
            return None

    def _guessed_right(self, cut: datetime) -> bool:
        """Whether Argo CD's time of each deployment before the cut (by either time) is the
        one the plan guessed (`refined`)."""
        assert self.refined is not None
        deployments = self.history.deployments
        if self.prefix is None:
            return not any(real != guess and (real < cut or guess < cut) for real, guess in zip(
                self.times, _guess(deployments, self.refined), strict=True))
        # a time other than its commit's is one Argo CD has, or one the plan guessed: those
        # deployments are among the planned ones, or before the cut (found in the store)
        keys = self.argo.known() | {f"{commit} {key}" for commit, times in self.refined.items()
                                    for key in times}
        at = dict(zip(self.keys() or (), self.positions or (), strict=True))
        missing = keys - at.keys()
        if missing:
            assert self.past is not None and self.validity is not None
            found = self.store.positions(int(cut.timestamp()), self.validity,
                                         self.prefix.text, missing, ())
            if found is None:
                return False
            try:
                at.update((key, _position(p, self.prefix.count)) for key, p in found[0])
            except ValueError:
                return False
        for key in keys:
            position = at.get(key)
            if position is None:
                continue  # no deployment of the history
            deployment = deployments[position]
            if record_key(deployment) != key:
                return False
            real, guess = self.argo.of(deployment), _guessed(deployment, self.refined)
            if real != guess and (real < cut or guess < cut):
                return False
        return True

    def _forget(self) -> None:
        self.past = self.positions = self.before = None
        self.prefix = self._keys = None

    def finish(self, records: Sequence[DeploymentRecord], past: Past
               ) -> tuple[list[DeploymentRecord], Past]:
        """The records (as Argo CD refined them) from the cut on, and the past with the
        refined records before it."""
        assert self.positions is not None and self.before is not None
        by_position = dict(zip(self.positions, records, strict=True))
        after = [r for p, r in by_position.items() if self.time_at(p) >= past.cut]
        return after, replace(past, before={key: by_position[p]
                                            for key, p in self.before.items()})

    def keep(self, figures: FigureHistory, unsettled: set[str]) -> None:
        """After a whole history's figures: keep a past a day before the earliest window,
        when there are records before it, with those of them that may still change
        (`unsettled`: each run makes them again, and reads the whole history when one
        differs), and where the deployments before it are."""
        cut = datetime.fromtimestamp(int((self.need - SLACK).timestamp()), self.need.tzinfo)
        times = self.times
        if not any(at < cut for at in times):
            return
        forms = {key: _settled_form(r) for r in figures.ordered if r.time < cut
                 and (key := f"{r.gitops_commit} {r.service} {r.environment}") in unsettled}
        # Argo CD's times of the deployments before the cut by either time (one synced late
        # may be after it)
        refined: dict[str, dict[str, str]] = {}
        for d, at in zip(self.history.deployments, times, strict=True):
            if (at < cut or d.time < cut) and at != d.time:
                refined.setdefault(d.gitops_commit, {})[f"{d.service} {d.environment}"] = (
                    at.isoformat())
        past = past_of(figures, cut)
        prefix, positions = self._prefix(cut, times)
        self.store.save(int(cut.timestamp()), self._validity(cut, times), kept.body(past),
                        kept.arrival_rows(past), json.dumps(forms, separators=(",", ":")),
                        json.dumps(refined, separators=(",", ":")), prefix, positions)

    def _prefix(self, cut: datetime, times: Sequence[datetime]
                ) -> tuple[str, list[tuple[str, str | None, int]]]:
        """What a past at `cut` is taken from, for a later plan to go on from (`_go_on`): the
        reader state and how many deployments it had, the positions from the cut on, each
        key's last before it, and (key, release, position) of each deployment before it.
        `_NO_PREFIX` when the state is not kept, or two deployments before the cut have one key
        (the store finds deployments by it)."""
        deployments = self.history.deployments
        if self.history.reading is None:
            return _NO_PREFIX, []
        rows = [(record_key(d), _release(d.service, d.release.revision), p)
                for p, (d, at) in enumerate(zip(deployments, times, strict=True)) if at < cut]
        if len({key for key, *_ in rows}) != len(rows):
            return _NO_PREFIX, []
        after: list[list[int]] = []
        for p, at in enumerate(times):
            if at >= cut:
                if after and after[-1][1] == p:
                    after[-1][1] = p + 1
                else:
                    after.append([p, p + 1])
        before = _last_before(deployments, times, cut)
        text = json.dumps({"reading": self.history.reading, "count": len(deployments),
                           "frame": _frame(self.history), "after": after, "rows": len(rows),
                           "before": [[*key, p] for key, p in before.items()]},
                          separators=(",", ":"))
        return f"{_digest(text)} {text}", rows

    def _validity(self, cut: datetime, times: Sequence[datetime]) -> str:
        """What a past at `cut` was taken from: the deployments before it (GitOps commit,
        service, environment, release and time as the record has it: a tag read again as a
        version, or as a commit, is another release), the environments and production."""
        lines = [_frame(self.history)]
        lines.extend(f"{d.gitops_commit} {d.service} {d.environment} {d.release.version!r} "
                     f"{d.release.revision} {at.timestamp()}"
                     for d, at in zip(self.history.deployments, times, strict=True)
                     if at < cut)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# a past kept without where its deployments are (its reader state not kept, or two of them
# with one key): planned from the whole history. (Earlier versions' pasts have "".)
_NO_PREFIX = "-"


@dataclass(frozen=True)
class _Prefix:
    """The deployments a kept past was taken from (`Horizon._prefix` writes it)."""

    reading: str  # GitOpsHistory.reading then
    count: int  # how many deployments the history had
    frame: str  # its environments and production (`_frame`)
    after: list[tuple[int, int]]  # ranges of the positions before `count` from the cut on
    before: dict[_Key, int]  # each key's last deployment before the cut
    rows: int  # the positions kept of the deployments before the cut
    text: str  # as the store has it (its positions are read only while it is the past's)


def _prefix(text: str) -> _Prefix | None:
    """What `Horizon._prefix` wrote; None for nothing, or a text it cannot have written (its
    digest does not match: the plan is made from the whole history)."""
    digest, _, body = text.partition(" ")
    if text in ("", _NO_PREFIX):
        return None
    try:
        if digest != _digest(body):
            raise ValueError("not as written")
        data = json.loads(body)
        count, rows = data["count"], data["rows"]
        if type(count) is not int or type(rows) is not int:
            raise TypeError("count")
        after = [(int(a), int(b)) for a, b in data["after"]]
        if count < 0 or any(not 0 <= a < b <= count for a, b in after):
            raise TypeError("a range of positions")
        before = {(str(s), str(e)): int(p) for s, e, p in data["before"]}
        if not all(type(data[k]) is str for k in ("reading", "frame")):
            raise TypeError("text")
    except (TypeError, ValueError, KeyError, RecursionError) as exc:
        log.info("the kept past's deployments are unreadable (%s): its plan is made again", exc)
        return None
    return _Prefix(data["reading"], count, data["frame"], after, before, rows, text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _position(value: object, count: int) -> int:
    """A position before `count` as the store has it; ValueError for any other value."""
    if type(value) is not int or not 0 <= value < count:
        raise ValueError("a position of another history")
    return value


def _frame(history: GitOpsHistory) -> str:
    """The environments and production of a history, as a past is taken with them."""
    return repr((history.environments, history.production))


def _release(service: str, revision: str | None) -> str | None:
    """A service's revision as the store finds deployments by it (None: a tag of no commit)."""
    return None if revision is None else f"{service} {revision}"


def _last_before(deployments: Sequence[Deployment], times: Sequence[datetime],
                 cut: datetime) -> dict[_Key, int]:
    """Each key's last deployment before the cut (by time; of equal times, the later one)."""
    before: dict[_Key, int] = {}
    for position, (deployment, at) in enumerate(zip(deployments, times, strict=True)):
        if at < cut:
            key = (deployment.service, deployment.environment)
            last = before.get(key)
            if last is None or at >= times[last]:
                before[key] = position
    return before


def _settled_form(record: DeploymentRecord) -> list[Any]:
    """What of a record its sources give (its revision, change set and ancestry's verdict): a
    record before the cut that may still change is compared in this form."""
    return [record.revision, None if record.change_set is None else
            [c.sha for c in record.change_set], record.ancestry_rollback]


def _guess(deployments: Sequence[Deployment], refined: Mapping[str, Mapping[str, datetime]]
           ) -> list[datetime]:
    """Each deployment's time: Argo CD's as `refined` has it (GitOps commit -> "service
    environment" -> time), else its GitOps commit's."""
    if not refined:
        return [d.time for d in deployments]
    return [_guessed(d, refined) for d in deployments]


def _guessed(deployment: Deployment, refined: Mapping[str, Mapping[str, datetime]]
             ) -> datetime:
    of = refined.get(deployment.gitops_commit)
    return (of and of.get(f"{deployment.service} {deployment.environment}")) or deployment.time


def _refined(text: str) -> dict[str, dict[str, datetime]]:
    """The Argo CD times `keep` wrote; ValueError for a text it cannot have written."""
    try:
        data = json.loads(text)
        if type(data) is not dict:
            raise TypeError("not an object")
        found = {}
        for commit, times in data.items():
            if type(times) is not dict:
                raise TypeError("not an object")
            found[commit] = {key: datetime.fromisoformat(at) for key, at in times.items()}
            if any(at.tzinfo is None for at in found[commit].values()):
                raise TypeError("a time without its offset")
    except (TypeError, ValueError, RecursionError) as exc:  # the last: nested too deep
        raise ValueError("not the Argo CD times of a past") from exc
    return found


def _unsettled(text: str) -> dict[str, list[Any]]:
    """The records `keep` wrote as unsettled; ValueError for a text it cannot have written."""
    try:
        data = json.loads(text)
    except (TypeError, RecursionError) as exc:  # the last: nested too deep
        raise ValueError("not the unsettled records of a past") from exc
    if type(data) is not dict or not all(type(k) is str and type(v) is list and len(v) == 3
                                         for k, v in data.items()):
        raise ValueError("not the unsettled records of a past")
    return data
