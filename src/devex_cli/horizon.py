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
next runs, a month before `need`. Argo CD is not waited for to plan: the past keeps the Argo CD
times of the deployments before its cut, the plan is made with them, and they are checked
against Argo CD's answer once the records are made (any other time before the cut reads the
whole history).
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

from devex_cli.config import Settings
from devex_cli.dora import past as kept
from devex_cli.dora.compute import LONGEST_WINDOW, FigureHistory, past_of
from devex_cli.dora.model import DeploymentRecord
from devex_cli.dora.past import Past
from devex_cli.records import record_fingerprint, record_key
from devex_cli.sources.gitops import Deployment, GitOpsHistory
from devex_cli.store import PastStore

log = logging.getLogger("devex.horizon")

SLACK = timedelta(days=30)  # a new cut is this far before the earliest window start
STALE = timedelta(days=60)  # a cut further back than this is replaced by a new one

_Key = tuple[str, str]


def earliest_start(start: datetime, now: datetime) -> datetime:
    """Where a collection's earliest window starts: its own, or the longest standard one's."""
    return min(start, now - LONGEST_WINDOW)


@dataclass
class Horizon:
    """A collection's cut: which deployments it makes records of (`positions`, None: all)."""

    store: PastStore
    history: GitOpsHistory
    times_of: Callable[[], Sequence[datetime]]  # each deployment's time as its record has it
    need: datetime
    past: Past | None = None  # the kept past in use (its records and arrivals not yet read)
    positions: list[int] | None = None
    before: Mapping[_Key, int] | None = None  # the last position before the cut, per key
    validity: str | None = None  # of the kept past in use
    # the records before the cut that may still change (`Records.unsettled`), as the past was
    # taken with them (`_settled_form`), by position: made again and compared each run
    unsettled: Mapping[int, list[Any]] | None = None

    # the times the plan was made with: the GitOps commits', and Argo CD's times before the cut
    # as the past was taken with them (checked against Argo CD's answer in `completed`)
    guessed: Sequence[datetime] | None = None

    @cached_property
    def times(self) -> Sequence[datetime]:
        """Each deployment's time as its record has it (Argo CD is waited for on first use:
        once the records of a kept past's plan are made, or when a past is kept)."""
        return self.times_of()

    @classmethod
    def plan(cls, settings: Settings, repo: Path, history: GitOpsHistory,
             times_of: Callable[[], Sequence[datetime]], need: datetime) -> Horizon:
        name = hashlib.sha256(f"{repo.resolve()}\0{history.branch}\0"
                              f"{','.join(settings.collect.services)}".encode()).hexdigest()[:16]
        horizon = cls(PastStore(settings.cache_dir(), record_fingerprint(settings), name),
                      history, times_of, need)
        found = horizon.store.latest(int(need.timestamp()))
        if found is None:
            return horizon
        cut_seconds, validity, body, unsettled_text, refined_text = found
        try:
            past = kept.from_body(body)
            unsettled = _unsettled(unsettled_text)
            refined = _refined(refined_text)
        except ValueError as exc:
            log.info("the kept past is unreadable (%s): the whole history is read", exc)
            return horizon
        if need - past.cut > STALE:
            return horizon  # read whole once, and keep a nearer cut
        # Argo CD is not waited for: its times before the cut as they were when the past was
        # taken; `completed` checks them once Argo CD has answered
        times = horizon.guessed = _guess(history.deployments, refined)
        if int(past.cut.timestamp()) != cut_seconds or validity != horizon._validity(past.cut,
                                                                                     times):
            log.info("the history before %s changed: the whole history is read", past.cut)
            return horizon
        # Before the cut: each key's last deployment, the deployments current states name and
        # one of each revision they run as its tag has it (a redeployment's full SHA may be
        # another environment's old tag: pending compares those revisions, resolved from the
        # records of the deployments with them), and the records that may still change.
        named = {(s.service, s.environment, s.gitops_commit) for s in history.current.values()}
        running = {(s.service, s.release.revision) for s in history.current.values()
                   if s.release.revision}
        before: dict[_Key, int] = {}
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
            key = (deployment.service, deployment.environment)
            last = before.get(key)
            if last is None or at >= times[last]:
                before[key] = position
            if (*key, deployment.gitops_commit) in named:
                extra.append(position)
            if (release := (deployment.service, deployment.release.revision)) in running:
                of_running[release] = position
        horizon.past, horizon.before, horizon.validity = past, before, validity
        horizon.unsettled = again
        horizon.positions = sorted({*after, *before.values(), *extra,
                                    *of_running.values(), *again})
        return horizon

    def keys(self) -> list[str] | None:
        """The store keys of the records to read (None: all)."""
        if self.positions is None:
            return None
        return [record_key(self.history.deployments[p]) for p in self.positions]

    def completed(self, records: Sequence[DeploymentRecord]) -> Past | None:
        """The kept past with the records before the cut (of `records`, made of `positions`)
        and the arrivals of the commits the records after it name; None when the kept arrivals
        do not read back (the whole history is read then, and the horizon forgets its past)."""
        assert self.past is not None and self.positions is not None and self.before is not None
        assert self.validity is not None and self.unsettled is not None
        assert self.guessed is not None
        cut = self.past.cut
        if any(real != guess and (real < cut or guess < cut)
               for real, guess in zip(self.times, self.guessed, strict=True)):
            log.info("Argo CD's times before %s are not those the past was taken with: the "
                     "whole history is read", cut)
            self.past = self.positions = self.before = None
            return None
        by_position = dict(zip(self.positions, records, strict=True))
        changed = next((p for p, form in self.unsettled.items()
                        if _settled_form(by_position[p]) != form), None)
        if changed is not None:  # a source answered what it did not (or not as) before
            log.info("a deployment before %s has another record now (%s): the whole history "
                     "is read", cut, record_key(self.history.deployments[changed]))
            self.past = self.positions = self.before = None
            return None
        named = {c.sha for p, r in by_position.items() if self.times[p] >= cut
                 for c in r.change_set or ()}
        rows = self.store.arrivals(int(cut.timestamp()), self.validity, named)
        try:
            if rows is None:
                raise ValueError("another collection replaced it")
            return kept.completed(self.past, {key: by_position[p] for key, p in
                                              self.before.items()}, rows)
        except ValueError as exc:
            log.info("the kept past is unreadable (%s): the whole history is read", exc)
            self.past = self.positions = self.before = None
            return None

    def finish(self, records: Sequence[DeploymentRecord], past: Past
               ) -> tuple[list[DeploymentRecord], Past]:
        """The records (as Argo CD refined them) from the cut on, and the past with the
        refined records before it."""
        assert self.positions is not None and self.before is not None
        by_position = dict(zip(self.positions, records, strict=True))
        after = [r for p, r in by_position.items() if self.times[p] >= past.cut]
        return after, replace(past, before={key: by_position[p]
                                            for key, p in self.before.items()})

    def keep(self, figures: FigureHistory, unsettled: set[str]) -> None:
        """After a whole history's figures: keep a past a month before the earliest window,
        when there are records before it, with those of them that may still change
        (`unsettled`: each run makes them again, and reads the whole history when one
        differs)."""
        cut = datetime.fromtimestamp(int((self.need - SLACK).timestamp()), self.need.tzinfo)
        if not any(at < cut for at in self.times):
            return
        forms = {key: _settled_form(r) for r in figures.ordered if r.time < cut
                 and (key := f"{r.gitops_commit} {r.service} {r.environment}") in unsettled}
        # Argo CD's times of the deployments before the cut by either time (one synced late
        # may be after it)
        refined: dict[str, dict[str, str]] = {}
        for d, at in zip(self.history.deployments, self.times, strict=True):
            if (at < cut or d.time < cut) and at != d.time:
                refined.setdefault(d.gitops_commit, {})[f"{d.service} {d.environment}"] = (
                    at.isoformat())
        past = past_of(figures, cut)
        self.store.save(int(cut.timestamp()), self._validity(cut, self.times), kept.body(past),
                        kept.arrival_rows(past), json.dumps(forms, separators=(",", ":")),
                        json.dumps(refined, separators=(",", ":")))

    def _validity(self, cut: datetime, times: Sequence[datetime]) -> str:
        """What a past at `cut` was taken from: the deployments before it (GitOps commit,
        service, environment, release and time as the record has it: a tag read again as a
        version, or as a commit, is another release), the environments and production."""
        lines = [repr((self.history.environments, self.history.production))]
        lines.extend(f"{d.gitops_commit} {d.service} {d.environment} {d.release.version!r} "
                     f"{d.release.revision} {at.timestamp()}"
                     for d, at in zip(self.history.deployments, times, strict=True)
                     if at < cut)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


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
    return [((of := refined.get(d.gitops_commit)) and of.get(f"{d.service} {d.environment}"))
            or d.time for d in deployments]


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
