"""What the figures need of the deployments before a cut, kept so that a collection whose
windows all start after the cut reads only the records after it.

Every figure of a window reads the records inside it, and a few facts of those before: the
releases each environment had (for rollbacks), when each commit first reached each environment
(a commit deployed again is not a new arrival; promotion waits and the hotfix check compare
arrivals across environments), the last deployment before the window (the revision running),
when each environment's history began, the commits waiting for production, and three counts
(per month, deployments without a change set, services whose app repository judged a rollback).
`compute.past_of` takes them from the whole history; `compute.history_of(..., past=...)` goes on
from them with the records after the cut, and gives the figures the whole history gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from devex_cli.dora.model import Change, DeploymentRecord
from devex_cli.dora.rollbacks import Ranks

Key = tuple[str, str]  # (service, environment)


@dataclass(frozen=True)
class Past:
    """The deployments before `cut`, as the figures after it need them."""

    cut: datetime
    before: Mapping[Key, DeploymentRecord]  # each key's last deployment before the cut
    ranks: Mapping[Key, Ranks]  # the releases each key had, in order (dora.rollbacks)
    # when commits first reached each key before the cut: every commit (`compute.past_of`), or
    # those the records after the cut name (what a collection reads of the store)
    arrivals: Mapping[Key, Mapping[str, datetime]]
    began: Mapping[str, datetime]  # environment -> its first deployment
    monthly: Mapping[tuple[str, str, int, int], int]  # (service, environment, year, month)
    without_change_set: int  # deployments naming a revision, with no change set known
    judged: Mapping[str, bool]  # service -> the app repository judged one of its deployments
    # (service, environment before production) -> the commits that reached it before the cut
    # and not production, in the order they arrived
    unpromoted: Mapping[Key, tuple[Change, ...]]


def body(past: Past) -> str:
    """All of `past` but `before` and `arrivals`, as JSON text (`from_body` reads it back)."""
    def key(k: Key) -> str:
        return f"{k[0]}\n{k[1]}"

    return json.dumps({
        "cut": _seconds(past.cut),
        "ranks": {key(k): r.state() for k, r in past.ranks.items()},
        "began": {env: _seconds(at) for env, at in past.began.items()},
        "monthly": [[s, e, y, m, n] for (s, e, y, m), n in past.monthly.items()],
        "without_change_set": past.without_change_set,
        "judged": past.judged,
        "unpromoted": {key(k): [[c.sha, _seconds(c.author_time), list(c.tickets), c.merge]
                                for c in changes] for k, changes in past.unpromoted.items()},
    }, separators=(",", ":"))


def arrival_rows(past: Past) -> list[tuple[str, str, str]]:
    """`past.arrivals` as (SHA, service, "environment seconds ...") rows: one a commit and
    service (`from_body` reads them back)."""
    by_sha: dict[tuple[str, str], list[str]] = {}
    for (service, environment), first in past.arrivals.items():
        for sha, at in first.items():
            by_sha.setdefault((sha, service), []).append(f"{environment} {_seconds(at)}")
    return [(sha, service, " ".join(items)) for (sha, service), items in by_sha.items()]


def from_body(text: str) -> Past:
    """The past `body` wrote, without its records before the cut and arrivals (`completed`
    adds them); ValueError for a text it cannot have written."""
    try:
        data = json.loads(text)
        ranks = {_key(k): Ranks.from_state(v) for k, v in data["ranks"].items()}
        began = {_text(env): _time(at) for env, at in data["began"].items()}
        monthly = {(_text(s), _text(e), _int(y), _int(m)): _int(n)
                   for s, e, y, m, n in data["monthly"]}
        judged = {_text(s): _bool(v) for s, v in data["judged"].items()}
        unpromoted = {_key(k): tuple(
            Change(_text(sha), _time(at), tuple(_text(t) for t in tickets), _bool(merge))
            for sha, at, tickets, merge in changes) for k, changes in data["unpromoted"].items()}
        cut, without = _time(data["cut"]), _int(data["without_change_set"])
    except (KeyError, TypeError, AttributeError, OverflowError, OSError,
            RecursionError) as exc:  # the last: JSON nested too deep
        raise ValueError(f"not a kept past: {exc}") from exc
    return Past(cut, {}, ranks, {}, began, monthly, without, judged, unpromoted)


def completed(past: Past, before: Mapping[Key, DeploymentRecord],
              rows: Iterable[tuple[Any, Any, Any]]) -> Past:
    """`past` with its records before the cut and the arrival rows `arrival_rows` wrote (those
    asked for); ValueError for rows it cannot have written, or records of other keys."""
    if set(before) != set(past.ranks):
        raise ValueError("the records before the cut are not those the past was kept for")
    arrivals: dict[Key, dict[str, datetime]] = {}
    try:
        for sha, service, text in rows:
            items = _text(text).split()
            if len(items) % 2:
                raise ValueError("an arrival row of odd length")
            for environment, at in zip(items[::2], items[1::2], strict=True):
                arrivals.setdefault((_text(service), environment), {})[_text(sha)] = _time(
                    int(at) if at.isdigit() else float(at))
    except (TypeError, OverflowError, OSError) as exc:
        raise ValueError(f"not a kept arrival: {exc}") from exc
    return replace(past, before=before, arrivals=arrivals)


def _seconds(at: datetime) -> float | int:
    seconds = at.timestamp()
    return int(seconds) if seconds == int(seconds) else seconds


def _time(value: Any) -> datetime:
    if type(value) not in (int, float):
        raise ValueError(f"not a time: {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _text(value: Any) -> str:
    if type(value) is not str:
        raise ValueError(f"not a text: {value!r}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"not a count: {value!r}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"not a flag: {value!r}")
    return value


def _key(text: Any) -> Key:
    service, _, environment = _text(text).partition("\n")
    return service, environment
