"""What each figure was computed from: the records `dora.compute` counts, divides and takes
medians of. The figures are made from these (`compute.environment_figures`), so a figure and
its evidence cannot disagree; `devex explain` shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from devex_cli.dora.model import Change, DeploymentRecord


@dataclass(frozen=True, slots=True)
class Coverage:
    """The days of a window an environment's history covers: from the later of the window's
    start and the environment's first deployment (of any service), to the earlier of the
    window's end and now. `days` is None when that span is empty (the rate is unknown)."""

    start: datetime
    end: datetime
    now: datetime
    began: datetime | None  # the environment's first deployment; None: it has none
    covered_from: datetime | None
    covered_to: datetime | None
    days: float | None


@dataclass(frozen=True, slots=True)
class FailureSignal:
    """Why a deployment counts as failed.

    `kind`: `rollback` (the next deployment rolled it back; `how` says `ancestry` where the app
    repository judged it, `gitops` where a tag was put back), `argocd` (its sync failed or its
    health went Degraded) or `incident` (an incident ticket, `ticket`, before the next
    deployment)."""

    kind: str
    how: str | None = None
    by: DeploymentRecord | None = None  # the rollback deployment
    ticket: str | None = None
    at: datetime | None = None  # when the incident was opened


@dataclass(frozen=True, slots=True)
class Failure:
    deployment: DeploymentRecord
    signals: tuple[FailureSignal, ...]
    recovered_by: DeploymentRecord | None  # the next deployment there that is not failed
    recovery_seconds: float | None


class Lead(NamedTuple):  # a tuple: one per commit and window, made cheaply
    """One commit's lead time: from its author time to its first deployment to the environment
    (never below 0: an author clock ahead of the deployment's counts as 0)."""

    change: Change
    deployment: DeploymentRecord  # the first deployment there that carried it
    seconds: float


@dataclass(frozen=True, slots=True)
class EnvironmentEvidence:
    """A service in an environment over [start, end): everything its figures are made of."""

    service: str
    environment: str
    deployments: tuple[DeploymentRecord, ...]  # in the window, oldest first
    current: DeploymentRecord | None  # the last one before the window's end
    coverage: Coverage
    failures: tuple[Failure, ...]  # the failed deployments in the window
    leads: tuple[Lead, ...]  # commits (not merges) first deployed there in the window
    rollbacks: tuple[DeploymentRecord, ...]
    hotfixes: tuple[DeploymentRecord, ...]
    redeployments: tuple[datetime, ...]  # rebuilds of the deployed commit in the window


class Promotion(NamedTuple):  # a tuple: one per commit and window, made cheaply
    """One commit first deployed to production in the window, on its way there: the first
    arrival in each environment (promotion order) and the waits between consecutive ones."""

    change: Change
    path: tuple[tuple[str, datetime], ...]
    waits: tuple[tuple[str, str, float], ...]  # (from, to, seconds): the waits counted
    out_of_order: tuple[tuple[str, str], ...]  # reached `to` before `from`: no wait counted
    skipped: tuple[str, ...]  # environments before production the service uses, not on its path


@dataclass(frozen=True, slots=True)
class TicketCarriers:
    """A ticket in an environment and not in production, with the commits that name it."""

    ticket: str
    changes: tuple[Change, ...]
