"""From deployment records to a snapshot, by the contract's "What the DORA figures mean"."""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import islice
from operator import attrgetter, itemgetter

from devex_cli.dora import tiers
from devex_cli.dora.evidence import (
    Coverage,
    EnvironmentEvidence,
    Failure,
    FailureSignal,
    Lead,
    Promotion,
    TicketCarriers,
)
from devex_cli.dora.model import (
    FAILURE_SIGNALS,
    ActualState,
    Change,
    DataQuality,
    DeploymentRecord,
    EnvironmentFigures,
    Incident,
    PromotionWait,
    RedeploymentRecord,
    ReportedDeployment,
    ServiceFigures,
    Snapshot,
    TicketInEnvironment,
    TicketInfo,
    WindowFigures,
)
from devex_cli.dora.past import Past
from devex_cli.dora.rollbacks import Ranks, rollbacks
from devex_cli.dora.stats import Summary

STANDARD_WINDOWS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
LONGEST_WINDOW = max(STANDARD_WINDOWS.values())
MONTHS_KEPT = 13  # calendar months of per-month counts (bounded label values)

_Key = tuple[str, str]  # (service, environment)
_TIME = attrgetter("time")  # a record's, for sorting


class _History:
    """The records in order, with what every window needs computed once.

    With `past` (what the records before its cut left: `past_of`), `records` are those from the
    cut on, and every figure of a window starting at the cut or later is the whole history's.
    """

    def __init__(self, records: Iterable[DeploymentRecord], incidents: Sequence[Incident],
                 production: str | None, environments: Sequence[str] = (),
                 redeployments: Iterable[RedeploymentRecord] = (),
                 past: Past | None = None) -> None:
        ordered = sorted(records, key=_TIME)
        self.past, self.production, self.environments = past, production, tuple(environments)
        if past is not None and ordered and ordered[0].time < past.cut:
            raise ValueError(f"a record of {ordered[0].time} is before the cut {past.cut}")
        # each (service, environment)'s last record before the cut: its state at the cut
        self.before: Mapping[_Key, DeploymentRecord] = past.before if past else {}
        self.rebuilt: dict[_Key, list[datetime]] = defaultdict(list)  # redeployment times
        for rebuild in redeployments:
            self.rebuilt[(rebuild.service, rebuild.environment)].append(rebuild.time)
        for times in self.rebuilt.values():
            times.sort()
        self.by_key: dict[_Key, list[DeploymentRecord]] = defaultdict(list)
        for key in self.before:  # deployed to before the cut (in the whole history's order)
            self.by_key[key] = []
        for record in ordered:
            self.by_key[(record.service, record.environment)].append(record)
        # each commit's lead time and path to production, made once for every window that has
        # it (the standard windows end now: the shorter ones' are the longest one's)
        self.leads: dict[_Key, dict[str, Lead]] = {}
        self.promotions: dict[tuple[str, str, tuple[str, ...]], dict[str, Promotion]] = {}
        self.rollback: dict[int, bool] = {}
        for key, group in self.by_key.items():
            ranks = past.ranks[key].copy() if past is not None and key in past.ranks else None
            self.rollback.update(zip(map(id, group), rollbacks(group, ranks), strict=True))
        # Why each deployment failed (no signal: it did not). A deployment looks only at its
        # service's incidents (every incident for every deployment was quadratic).
        self.signals: dict[int, tuple[FailureSignal, ...]] = {}
        by_service: dict[str, list[Incident]] = defaultdict(list)
        for incident in incidents:
            by_service[incident.service].append(incident)
        for (service, environment), group in self.by_key.items():
            for i, record in enumerate(group):
                following = group[i + 1] if i + 1 < len(group) else None
                self.signals[id(record)] = _failure_signals(
                    record, following, self.rollback,
                    by_service.get(service, ()) if environment == production else ())
        # The first time each commit reached each environment (and the deployment that took it
        # there), and the commits themselves.
        self.first: dict[_Key, dict[str, datetime]] = defaultdict(dict)
        self.carrier: dict[_Key, dict[str, DeploymentRecord]] = defaultdict(dict)
        self.changes: dict[str, Change] = {}
        # per key, how many of `first`'s commits arrived before the cut (they come first)
        self.arrived_before: dict[_Key, int] = {}
        known = self.changes
        arrived = past.arrivals if past is not None else {}
        for key, group in self.by_key.items():
            # the one loop over every commit of the history: locals only (a run's largest cost)
            first: dict[str, datetime] = dict(sorted(arrived.get(key, {}).items(),
                                                     key=itemgetter(1)))
            self.arrived_before[key] = len(first)
            carrier: dict[str, DeploymentRecord] = {}
            for record in group:
                if not record.change_set:
                    continue
                at = record.time
                for change in record.change_set:
                    sha = change.sha
                    if sha not in first:
                        first[sha] = at
                        carrier[sha] = record
                        known.setdefault(sha, change)
                    elif sha not in known:  # it arrived before the cut
                        known[sha] = change
            if first:  # an environment with no commit has no entry (as a defaultdict's)
                self.first[key], self.carrier[key] = first, carrier
        self.merges = {sha for sha, change in self.changes.items() if change.merge}
        self.ordered = ordered
        self.ordered_times = [r.time for r in ordered]
        # When the history of each environment starts: its first deployment of any service.
        self.began: dict[str, datetime] = dict(past.began) if past is not None else {}
        for record in ordered:
            self.began.setdefault(record.environment, record.time)
        # For windows: record times, and commits by the time they first arrived, in order (a
        # window then costs its own size, not the history's).
        self.times = {key: [r.time for r in group] for key, group in self.by_key.items()}
        # `first` was filled in record order, so its items are already in time order
        self.arrivals = {key: list(zip(first.values(), first, strict=True))
                         for key, first in self.first.items()}
        self.arrival_times = {key: list(first.values()) for key, first in self.first.items()}
        self.without_change_set = (past.without_change_set if past is not None else 0) + sum(
            1 for r in ordered if r.change_set is None and r.revision is not None)
        self.hotfix: set[int] = set()
        if production is not None and production in environments:
            before = environments[: list(environments).index(production)]
            for (service, environment), group in self.by_key.items():
                stages = [self.first.get((service, e), {}) for e in before
                          if (service, e) in self.by_key]
                if environment != production or not stages:
                    continue
                for record in group:
                    changes = [c for c in record.change_set or () if not c.merge]
                    if any(all(c.sha not in stage or stage[c.sha] > record.time
                               for stage in stages) for c in changes):
                        self.hotfix.add(id(record))

    def is_failed(self, record: DeploymentRecord) -> bool:
        return bool(self.signals[id(record)])

    def is_rollback(self, record: DeploymentRecord) -> bool:
        return self.rollback[id(record)]


def failure_signals(records: Iterable[DeploymentRecord], *, argocd: Collection[str] = (),
                    incidents: bool = False,
                    past: Past | None = None) -> dict[str, tuple[str, ...]]:
    """Per service, the failure signals its figures rest on (model.FAILURE_SIGNALS, in that
    order): `gitops` (rollbacks from the GitOps history) always; `ancestry` where the app
    repository judged at least one of its deployments against the one it replaced; `argocd` for
    the services Argo CD answered for; `incidents` when incident tickets were read. With `past`,
    `records` are those from its cut on."""
    judged: dict[str, bool] = dict(past.judged) if past is not None else {}
    for record in records:
        judged[record.service] = (judged.get(record.service, False)
                                  or record.ancestry_rollback is not None)
    signals = {}
    for service in sorted(judged):
        present = {"gitops": True, "ancestry": judged[service], "argocd": service in argocd,
                   "incidents": incidents}
        signals[service] = tuple(s for s in FAILURE_SIGNALS if present[s])
    return signals


# The records in order with what every figure reads (history_of makes it).
FigureHistory = _History


def history_of(records: Iterable[DeploymentRecord], *, environments: Sequence[str],
               production: str | None, incidents: Sequence[Incident] = (),
               redeployments: Iterable[RedeploymentRecord] = (),
               past: Past | None = None) -> _History:
    """The records in order with what every figure reads, as `build_snapshot` makes it: for
    `environment_evidence`, `promotion_evidence` and `ticket_evidence`. With `past` (see
    `past_of`), `records` are those from its cut on."""
    return _History(records, incidents, production, environments, redeployments, past)


def past_of(history: _History, cut: datetime) -> Past:
    """What the records of `history` before `cut` leave for the figures after it (`history_of`
    with `past=` goes on from it). `history` is the whole history's (it has no past)."""
    if history.past is not None:
        raise ValueError("the past is taken from a whole history")
    before: dict[_Key, DeploymentRecord] = {}
    ranks: dict[_Key, Ranks] = {}
    monthly: dict[tuple[str, str, int, int], int] = defaultdict(int)
    judged: dict[str, bool] = {}
    without = 0
    for key, group in history.by_key.items():
        prefix = group[: bisect_left(history.times[key], cut)]
        if not prefix:
            continue
        before[key], ranks[key] = prefix[-1], Ranks.after(prefix)
        for record in prefix:
            monthly[(key[0], key[1], record.time.year, record.time.month)] += 1
            without += record.change_set is None and record.revision is not None
            judged[key[0]] = judged.get(key[0], False) or record.ancestry_rollback is not None
    arrivals = {key: early for key, first in history.first.items()
                if (early := {sha: at for sha, at in first.items() if at < cut})}
    unpromoted: dict[_Key, tuple[Change, ...]] = {}
    production = history.production
    if production is not None and production in history.environments:
        stages = history.environments[: history.environments.index(production)]
        for (service, environment), early in arrivals.items():
            if environment in stages:
                there = arrivals.get((service, production), {})
                unpromoted[(service, environment)] = tuple(
                    history.changes[sha] for sha in early if sha not in there)
    return Past(cut, before, ranks, arrivals,
                {env: at for env, at in history.began.items() if at < cut}, dict(monthly),
                without, judged, unpromoted)


def _failure_signals(record: DeploymentRecord, following: DeploymentRecord | None,
                     rollback: Mapping[int, bool],
                     incidents: Sequence[Incident]) -> tuple[FailureSignal, ...]:
    """Why `record` failed, by the contract's "Failed deployment"; `incidents` are those that
    count for its environment (production's alone)."""
    rolled_back = following is not None and rollback[id(following)]
    if not (rolled_back or record.failed_sync or incidents):
        return ()  # the common case, once per deployment: kept cheap
    signals = []
    if following is not None and rolled_back:
        how = "gitops" if following.ancestry_rollback is None else "ancestry"
        signals.append(FailureSignal("rollback", how=how, by=following))
    if record.failed_sync:
        signals.append(FailureSignal("argocd"))
    end = following.time if following else None
    signals.extend(FailureSignal("incident", ticket=i.key, at=i.time) for i in incidents
                   if i.service == record.service and record.time <= i.time
                   and (end is None or i.time < end))
    return tuple(signals)


def build_snapshot(
    records: Iterable[DeploymentRecord],
    *,
    environments: Sequence[str],
    production: str | None,
    now: datetime,
    start: datetime,
    end: datetime,
    incidents: Sequence[Incident] = (),
    tickets: Mapping[str, TicketInfo] | None = None,
    pending: Mapping[tuple[str, str], Sequence[Change]] | None = None,
    data_quality: DataQuality | None = None,
    sources: Mapping[str, bool] | None = None,
    actual: Mapping[tuple[str, str], ActualState] | None = None,
    redeployments: Iterable[RedeploymentRecord] = (),
    qa_environment: str = "qa",
    history: FigureHistory | None = None,
) -> Snapshot:
    """Every figure for the window [start, end), and for the standard windows ending `now`.

    `pending` gives, per (service, environment) before production, the commits of the
    environment's revision that production's revision does not have (from the app repository);
    where it is missing, they are taken from the change sets deployed there and not to production.
    `qa_environment` is the environment the QA release gate names (`gate.environment`).
    `history`: the records' `history_of`, when the caller made it already (explain reads it).
    """
    if history is None:
        history = _History(records, incidents, production, environments, redeployments)
    if history.past is not None and min(start, now - LONGEST_WINDOW) < (
            history.past.cut):
        raise ValueError(f"a window starts before the cut {history.past.cut} of the records")
    deployments = tuple(
        ReportedDeployment(
            service=r.service, environment=r.environment, revision=r.revision, version=r.version,
            time=r.time, gitops_commit=r.gitops_commit,
            commits=None if r.change_set is None else tuple(
                c.sha for c in r.change_set if not c.merge),
            tickets=tuple(dict.fromkeys(t for c in r.change_set or () for t in c.tickets)),
            failed=history.is_failed(r), rollback=history.is_rollback(r),
            hotfix=id(r) in history.hotfix,
        )
        for r in history.ordered[bisect_left(history.ordered_times, start):
                                 bisect_left(history.ordered_times, end)]
    )
    window = _window("window", history, environments, production, start, end, now)
    # a standard window the same as the asked one (`--since 90d`) is computed once
    windows = {name: replace(window, name=name) if (now - span, now) == (start, end)
               else _window(name, history, environments, production, now - span, now, now)
               for name, span in STANDARD_WINDOWS.items()}
    quality = data_quality or DataQuality()
    quality = replace(quality, deployments_without_change_set=history.without_change_set)
    return Snapshot(
        generated_at=now,
        environments=tuple(environments),
        production=production,
        deployments=deployments,
        window=window,
        windows=windows,
        monthly=_monthly(history, now),
        tickets_in_environment=_tickets_in_environments(history, environments, production,
                                                        tickets, pending or {}),
        data_quality=quality,
        sources=dict(sources or {}),
        actual=dict(actual or {}),
        qa_release=qa_release(environments, production, qa_environment),
    )


def qa_release(environments: Sequence[str], production: str | None,
               preferred: str = "qa") -> str | None:
    """The environment of "the QA release": `preferred` (the gate's environment) where the
    repository has it, else the one just before production in the promotion order; None when
    there is neither."""
    if preferred in environments and preferred != production:
        return preferred
    if production is None or production not in environments:
        return None
    position = list(environments).index(production)
    return environments[position - 1] if position > 0 else None


def _window(name: str, history: _History, environments: Sequence[str], production: str | None,
            start: datetime, end: datetime, now: datetime) -> WindowFigures:
    days = {env: _coverage(history, env, start, end, now) for env in environments}
    services = sorted({s for s, _ in history.by_key})
    figures = []
    every_wait: dict[tuple[str, str], list[float]] = defaultdict(list)
    for service in services:
        envs = tuple(
            _environment(history, service, env, start, end, days[env])
            for env in environments if (service, env) in history.by_key
        )
        waits = _promotion_waits(promotion_evidence(history, service, environments, production,
                                                    start, end))
        for stage, values in waits.items():
            every_wait[stage].extend(values)
        promotion = _summaries(waits, environments)
        prod = next((e for e in envs if e.environment == production), None)
        figures.append(ServiceFigures(
            service=service, environments=envs, tier=_tier(prod), promotion_waits=promotion,
            bottleneck=_largest(promotion)))
    promotion = _summaries(every_wait, environments)
    return WindowFigures(name, start, end, tuple(figures), promotion, _largest(promotion))


def _coverage(history: _History, environment: str, start: datetime, end: datetime,
              now: datetime) -> Coverage:
    """The days of [start, end) that the environment's history covers: from the later of `start`
    and its first deployment (of any service) to the earlier of `end` and `now`. None when it
    covers none of it (no deployment there before the window ends): a rate devex cannot know."""
    began = history.began.get(environment)
    if began is None:
        return Coverage(start, end, now, None, None, None, None)
    covered_from, covered_to = max(start, began), min(end, now)
    seconds = (covered_to - covered_from).total_seconds()
    return Coverage(start, end, now, began, covered_from, covered_to,
                    seconds / 86400 if seconds > 0 else None)


def environment_evidence(history: _History, service: str, environment: str, start: datetime,
                         end: datetime, now: datetime,
                         coverage: Coverage | None = None) -> EnvironmentEvidence:
    """What the figures of `service` in `environment` over [start, end) are made of (every
    figure of `environment_figures`). `coverage` is the environment's, when already known."""
    key = (service, environment)
    coverage = coverage or _coverage(history, environment, start, end, now)
    group, times = history.by_key.get(key, []), history.times.get(key, [])
    first, last = bisect_left(times, start), bisect_left(times, end)
    inside = tuple(group[first:last])
    failures = []
    for index in range(first, last):
        record = group[index]
        if not history.is_failed(record):
            continue
        recovered = next((r for r in islice(group, index + 1, None)
                          if r.time > record.time and not history.is_failed(r)), None)
        failures.append(Failure(
            record, history.signals[id(record)], recovered,
            None if recovered is None else (recovered.time - record.time).total_seconds()))
    carriers = history.carrier.get(key, {})
    made, merges, changes = history.leads.setdefault(key, {}), history.merges, history.changes
    leads = []
    for at, sha in _arrived(history, key, start, end):
        lead = made.get(sha)
        if lead is None:
            if sha in merges:
                continue
            change = changes[sha]
            lead = made[sha] = Lead(change, carriers[sha],
                                    max(0.0, (at - change.author_time).total_seconds()))
        leads.append(lead)
    rebuilt = history.rebuilt.get(key, [])
    return EnvironmentEvidence(
        service=service, environment=environment, deployments=inside,
        current=group[last - 1] if last else history.before.get(key), coverage=coverage,
        failures=tuple(failures), leads=tuple(leads),
        rollbacks=tuple(r for r in inside if history.is_rollback(r)),
        hotfixes=tuple(r for r in inside if id(r) in history.hotfix),
        redeployments=tuple(rebuilt[bisect_left(rebuilt, start):bisect_left(rebuilt, end)]),
    )


def environment_figures(evidence: EnvironmentEvidence) -> EnvironmentFigures:
    """The figures of a service in an environment, from their evidence."""
    inside, current, days = evidence.deployments, evidence.current, evidence.coverage.days
    return EnvironmentFigures(
        environment=evidence.environment,
        revision=current.revision if current else None,
        version=current.version if current else None,
        last_deployed_at=current.time if current else None,
        deployments=len(inside),
        deployment_frequency_per_day=None if days is None else len(inside) / days,
        lead_time=Summary.of([lead.seconds for lead in evidence.leads]),
        change_failure_rate=len(evidence.failures) / len(inside) if inside else None,
        failed=len(evidence.failures),
        rollbacks=len(evidence.rollbacks),
        recovery_time=Summary.of([f.recovery_seconds for f in evidence.failures
                                  if f.recovery_seconds is not None]),
        hotfixes=len(evidence.hotfixes),
        redeployments=len(evidence.redeployments),
    )


def _environment(history: _History, service: str, environment: str, start: datetime,
                 end: datetime, coverage: Coverage) -> EnvironmentFigures:
    return environment_figures(environment_evidence(history, service, environment, start, end,
                                                    coverage.now, coverage))


def _arrived(history: _History, key: _Key, start: datetime,
             end: datetime) -> list[tuple[datetime, str]]:
    """The commits that first reached (service, environment) in [start, end), by time."""
    times = history.arrival_times.get(key, [])
    return history.arrivals.get(key, [])[bisect_left(times, start):bisect_left(times, end)]


def promotion_evidence(history: _History, service: str, environments: Sequence[str],
                       production: str | None, start: datetime,
                       end: datetime) -> list[Promotion]:
    """The commits (not merges) of `service` first deployed to production in the window, each
    with its path through the environments and the waits between consecutive stages of it."""
    if production is None:
        return []
    firsts = [history.first.get((service, env), {}) for env in environments]
    used = [(env, history.first.get((service, env), {}))
            for env in environments[: list(environments).index(production)]
            if (service, env) in history.by_key] if production in environments else []
    made = history.promotions.setdefault((service, production, tuple(environments)), {})
    promotions = []
    for _, sha in _arrived(history, (service, production), start, end):
        promotion = made.get(sha)
        if promotion is None:
            if sha in history.merges:
                continue
            path = tuple((env, f[sha]) for env, f in zip(environments, firsts, strict=True)
                         if sha in f)
            waits, out_of_order = [], []
            for (env_a, at_a), (env_b, at_b) in itertools.pairwise(path):
                if at_b >= at_a:
                    waits.append((env_a, env_b, (at_b - at_a).total_seconds()))
                else:
                    out_of_order.append((env_a, env_b))
            promotion = made[sha] = Promotion(history.changes[sha], path, tuple(waits),
                                              tuple(out_of_order),
                                              tuple(env for env, f in used if sha not in f))
        promotions.append(promotion)
    return promotions


def _promotion_waits(promotions: Iterable[Promotion]) -> dict[tuple[str, str], list[float]]:
    """Per stage, the waits of the commits first deployed to production in the window."""
    waits: dict[tuple[str, str], list[float]] = defaultdict(list)
    for promotion in promotions:
        for env_a, env_b, seconds in promotion.waits:
            waits[(env_a, env_b)].append(seconds)
    return waits


def promotion_summaries(promotions: Iterable[Promotion], environments: Sequence[str]
                        ) -> tuple[tuple[PromotionWait, ...], PromotionWait | None]:
    """The median wait of each stage and the bottleneck (the largest), from the promotions."""
    summaries = _summaries(_promotion_waits(promotions), environments)
    return summaries, _largest(summaries)


def _summaries(waits: Mapping[tuple[str, str], list[float]],
               environments: Sequence[str]) -> tuple[PromotionWait, ...]:
    order = {env: i for i, env in enumerate(environments)}
    return tuple(
        PromotionWait(a, b, Summary.of(values))
        for (a, b), values in sorted(waits.items(), key=lambda kv: (order[kv[0][0]],
                                                                     order[kv[0][1]]))
    )


def _largest(waits: Sequence[PromotionWait]) -> PromotionWait | None:
    measured = [w for w in waits if w.wait.median is not None]
    return max(measured, key=lambda w: w.wait.median or 0.0) if measured else None


def _tier(production: EnvironmentFigures | None) -> str | None:
    if production is None or production.deployments == 0:
        return None
    ranks = []
    if production.deployment_frequency_per_day is not None:
        ranks.append(tiers.frequency_tier(production.deployment_frequency_per_day))
    if production.lead_time.median is not None:
        ranks.append(tiers.lead_time_tier(production.lead_time.median))
    if production.change_failure_rate is not None:
        ranks.append(tiers.change_failure_tier(production.change_failure_rate))
    if production.recovery_time.median is not None:
        ranks.append(tiers.recovery_tier(production.recovery_time.median))
    return tiers.overall_tier(ranks)


def _monthly(history: _History, now: datetime) -> dict[tuple[str, str, str], int]:
    first_month = (now.year * 12 + now.month - 1) - (MONTHS_KEPT - 1)
    counts: dict[tuple[str, str, int, int], int] = defaultdict(int)
    for (service, environment, year, month), n in (
            history.past.monthly.items() if history.past is not None else ()):
        if year * 12 + month - 1 >= first_month:
            counts[(service, environment, year, month)] += n
    for record in history.ordered:
        if record.time.year * 12 + record.time.month - 1 >= first_month:
            counts[(record.service, record.environment, record.time.year, record.time.month)] += 1
    return {(service, environment, f"{year:04d}-{month:02d}"): n
            for (service, environment, year, month), n in counts.items()}


def _tickets_in_environments(
    history: _History,
    environments: Sequence[str],
    production: str | None,
    tickets: Mapping[str, TicketInfo] | None,
    pending: Mapping[tuple[str, str], Sequence[Change]],
) -> tuple[TicketInEnvironment, ...]:
    """Tickets of commits deployed to an environment before production and not yet in it."""
    found: dict[tuple[str, str, str], TicketInEnvironment] = {}
    for key, service, environment in _waiting(history, environments, production, pending):
        info = tickets.get(key) if tickets is not None else None
        found.setdefault((key, service, environment), TicketInEnvironment(
            ticket=key, service=service, environment=environment,
            fix_versions=info.fix_versions if info else (None if tickets is None else ()),
            status=info.status if info else None,
            sprint=info.sprint if info else None))
    return tuple(found.values())


def waiting_tickets(history: FigureHistory, environments: Sequence[str], production: str | None,
                    pending: Mapping[tuple[str, str], Sequence[Change]]) -> list[str]:
    """The keys `build_snapshot`'s `tickets_in_environment` will list, sorted: known before the
    snapshot is built, so that the ticket source is asked while it is."""
    return sorted({key for key, _, _ in _waiting(history, environments, production, pending)})


def _waiting(history: _History, environments: Sequence[str], production: str | None,
             pending: Mapping[tuple[str, str], Sequence[Change]]
             ) -> Iterator[tuple[str, str, str]]:
    """(ticket, service, environment) of the commits each environment before production has
    and production has not, in the order the snapshot lists them."""
    if production is None or production not in environments:
        return
    before = environments[: environments.index(production)]
    for service, environment in sorted({k for k in history.by_key if k[1] in before}
                                       | set(pending)):
        for change in _not_in_production(history, service, environment, production, pending):
            for key in change.tickets:
                yield key, service, environment


def _not_in_production(history: _History, service: str, environment: str, production: str,
                       pending: Mapping[tuple[str, str], Sequence[Change]]) -> Iterable[Change]:
    """The commits `environment` has of `service` and production has not: the app
    repository's (`pending`) where known, else those of the change sets deployed there and not
    to production."""
    if (service, environment) in pending:
        return pending[(service, environment)]
    in_production = history.first.get((service, production), {})
    here = history.first.get((service, environment), {})
    if history.past is None:
        return (history.changes[sha] for sha in here if sha not in in_production)
    # those that arrived before the cut and not in production then, then those after it
    before = history.past.unpromoted.get((service, environment), ())
    after = islice(here, history.arrived_before.get((service, environment), 0), None)
    return itertools.chain((c for c in before if c.sha not in in_production),
                           (history.changes[sha] for sha in after if sha not in in_production))


def ticket_evidence(history: _History, service: str, environment: str, production: str,
                    pending: Mapping[tuple[str, str], Sequence[Change]]
                    ) -> tuple[TicketCarriers, ...]:
    """The tickets of `service` in `environment` and not in production, in the order
    `tickets_in_environment` lists them, each with the commits that name it."""
    carriers: dict[str, list[Change]] = {}
    for change in _not_in_production(history, service, environment, production, pending):
        for key in change.tickets:
            carriers.setdefault(key, []).append(change)
    return tuple(TicketCarriers(key, tuple(changes)) for key, changes in carriers.items())
