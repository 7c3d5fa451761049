"""The terminal view of a snapshot: the four answers and the DORA figures per service, as tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TextIO

from devex_cli.dora.model import Snapshot, WindowFigures
from devex_cli.textsafe import safe_markup as m

# a commit SHA of 12 to 40 hex digits, not all of them digits (a date or build number)
_LONG_SHA = re.compile(r"(?<![0-9A-Za-z])(?=[0-9]*[a-f])[0-9a-f]{12,40}(?![0-9A-Za-z])")


def duration(seconds: float | None) -> str:
    """`3d 4h`, `5h 12m`, `42m`, `-` for no value."""
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def render_tables(snapshot: Snapshot, *, color: bool, file: TextIO | None = None) -> None:
    """The four answers, then the DORA figures per service, on stdout (or `file`). The third (tickets in
    the QA release) is left out where the repository has no QA release environment.

    Service, environment and image names, tags and ticket keys come from the GitOps repository,
    Argo CD and commit messages: each enters a table or a title through `m` (textsafe's
    safe_markup), so no escape sequence or rich markup in them reaches the terminal.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=not color, highlight=False, emoji=False,
                      width=_width() if file is None else 120, file=file)
    window = snapshot.window
    production = snapshot.production or "production"
    span = f"{window.start:%Y-%m-%d} to {window.end:%Y-%m-%d}"

    # 1. How many deployments did we do this month?
    _deployments_per_month(console, snapshot)

    # 2. What is our lead time from commit to production?
    console.print(f"2. Lead time from commit to {m(production)} ({span})", style="bold")
    table = Table()
    for name in ("service", "median", "p90", "commits"):
        table.add_column(name, justify="left" if name == "service" else "right")
    for service in window.services:
        prod = service.environment(production)
        if prod is not None:
            table.add_row(m(service.service), duration(prod.lead_time.median),
                          duration(prod.lead_time.p90), str(prod.lead_time.count))
    console.print(table)
    console.print()

    # 3. Which Jira tickets are in the QA release right now?
    if snapshot.qa_release is not None:
        _qa_release(console, snapshot, snapshot.qa_release, production)

    # 4. Where are our deployment bottlenecks?
    _bottlenecks(console, window)

    # The DORA keys per service.
    console.print(f"DORA figures in {m(production)} ({span})", style="bold")
    table = Table()
    # what ran in production at the window's end: "now" unless --until put that in the past
    now = window.end >= snapshot.generated_at - timedelta(minutes=1)
    running = f"in {m(production)} now" if now else f"in {m(production)} at the end"
    for name in ("service", running, "deploys\nper day", "lead time\n(median)",
                 "change\nfailure\nrate", "recovery\n(median)", "rework", "tier"):
        table.add_column(name, justify="left" if name in ("service", running) else "right")
    signals = snapshot.data_quality.failure_signals
    git_alone = {name for name, found in signals.items() if tuple(found) == ("gitops",)}
    marked = False
    for service in window.services:
        prod = service.environment(production)
        if prod is None:
            continue
        rate = "-" if prod.change_failure_rate is None else f"{prod.change_failure_rate:.0%}"
        if service.service in git_alone and prod.change_failure_rate is not None:
            rate, marked = f"{rate} ^", True
        frequency = ("unknown" if prod.deployment_frequency_per_day is None
                     else f"{prod.deployment_frequency_per_day:.2f}")
        table.add_row(m(service.service), m(release(prod.version, prod.revision)), frequency,
                      duration(prod.lead_time.median), rate,
                      duration(prod.recovery_time.median),
                      str(prod.rollbacks + prod.hotfixes), m(service.tier or "-"))
    console.print(table)
    console.print()
    drifting = sorted((k, a) for k, a in snapshot.actual.items() if a.drift)
    if drifting:
        console.print("Drift: Argo CD runs something else than the GitOps repository asks for",
                      style="bold")
        table = Table()
        for name in ("service", "environment", "runs", "sync", "health", "since"):
            table.add_column(name)
        for (name, environment), state in drifting:
            since = (duration((snapshot.generated_at - state.drift_since).total_seconds())
                     if state.drift_since else "-")
            table.add_row(m(name), m(environment),
                          m((state.revision or "")[:7] or state.version or "?"),
                          m(state.sync), m(state.health), since)
        console.print(table)
        console.print()
    console.print(f"   {running}: the image tag deployed last (a long commit SHA in it cut to 7 "
                  "digits)\n"
                  "   rework: rollbacks + hotfixes (changes that skipped the earlier stages)\n"
                  "   tier: the median of the four measures' own tiers (of four, the lower middle "
                  "one; a measure\n"
                  "   without data is left out), so one measure can rank below it; thresholds: "
                  "docs/dora.md")
    if marked:
        console.print("   ^ failures from GitOps history only (tags put back): no app "
                      "repository, Argo CD or incidents to tell others")
    console.print()
    _data_quality(console, snapshot)


def _deployments_per_month(console: Any, snapshot: Snapshot) -> None:
    """Deployments per service and environment in the month that holds the window's end (so
    far, when that is now) and in the month before, in full: on the 1st, this month alone would
    be all zeros. One table with a group of columns per month where it fits, else two."""
    from rich.measure import Measurement
    from rich.table import Table

    end = snapshot.window.end - timedelta(seconds=1)
    month = f"{end:%Y-%m}"
    previous = f"{end.year - (end.month == 1):04d}-{(end.month - 2) % 12 + 1:02d}"
    so_far = snapshot.window.end >= snapshot.generated_at - timedelta(minutes=1)
    label = f"{month} so far" if so_far else month
    console.print(f"1. Deployments this month{' so far' if so_far else ''} ({month}) and last "
                  f"month ({previous})", style="bold")
    environments = snapshot.environments
    names = sorted({s for s, _, _ in snapshot.monthly})

    def counts(name: str, which: str) -> list[int]:
        return [snapshot.monthly.get((name, e, which), 0) for e in environments]

    def table_of(months: Sequence[tuple[str, str]]) -> Table:
        table = Table()
        table.add_column("\nservice" if len(months) > 1 else "service")
        for heading, _ in months:
            for n, environment in enumerate(environments):
                top = heading if n == 0 and len(months) > 1 else ""
                table.add_column(f"{top}\n{m(environment)}" if len(months) > 1
                                 else m(environment), justify="right")
        totals = [0] * (len(environments) * len(months))
        for name in names:
            row = [n for _, which in months for n in counts(name, which)]
            totals = [a + b for a, b in zip(totals, row, strict=True)]
            table.add_row(m(name), *(str(n) for n in row))
        table.add_row("all", *(str(n) for n in totals), style="bold")
        return table

    both = table_of([(month, month), (previous, previous)])
    if Measurement.get(console, console.options.update_width(10_000), both).maximum <= console.width:
        console.print(both)
    else:  # too many environments for one line: a table a month
        for heading, which in ((label, month), (previous, previous)):
            console.print(f"   {heading}")
            console.print(table_of([(heading, which)]))
    console.print()


def release(version: str | None, revision: str | None) -> str:
    """What a deployment runs, as people name it: its tag, a long SHA in it cut to 7 digits
    (`1.4.2-58ddfd6a91c3...` -> `1.4.2-58ddfd6`); the short revision where it has no tag."""
    if version:
        return _LONG_SHA.sub(lambda found: found.group(0)[:7], version)
    return (revision or "")[:7] or "-"


def _qa_release(console: Any, snapshot: Snapshot, qa: str, production: str) -> None:
    from rich.table import Table

    in_qa = [t for t in snapshot.tickets_in_environment if t.environment == qa]
    jira_known = any(t.fix_versions is not None for t in in_qa)
    console.print(f"3. Tickets in {m(qa)} and not yet in {m(production)} ({len(in_qa)})",
                  style="bold")
    table = Table()
    for name in ("service", "tickets", "without fix version", "keys"):
        table.add_column(name, justify="right" if name in ("tickets", "without fix version")
                         else "left")
    for name in sorted({t.service for t in in_qa}):
        mine = [t for t in in_qa if t.service == name]
        missing = [t for t in mine if t.fix_versions == ()]
        keys = ", ".join(f"{m(t.ticket)}*" if t.fix_versions == () else m(t.ticket) for t in mine)
        table.add_row(m(name), str(len(mine)), str(len(missing)) if jira_known else "?", keys)
    console.print(table)
    if in_qa and not jira_known and snapshot.sources.get("jira") is False:
        console.print("   Fix versions come from Jira, which did not answer this time (see the "
                      "warning above).")
    elif in_qa and not jira_known:
        console.print("   Fix versions come from Jira: set JIRA_URL (and credentials) and drop "
                      "--offline.")
    elif any(t.fix_versions == () for t in in_qa):
        console.print("   * no fix version in Jira")
    console.print()


def _bottlenecks(console: Any, window: WindowFigures) -> None:
    from rich.table import Table

    console.print("4. Bottlenecks: median wait between stages", style="bold")
    table = Table()
    table.add_column("service")
    stages = [(w.from_environment, w.to_environment) for w in window.promotion_waits]
    for a, b in stages:
        table.add_column(f"{m(a)} -> {m(b)}", justify="right")
    table.add_column("bottleneck")
    for service in window.services:
        waits = {(w.from_environment, w.to_environment): w.wait.median
                 for w in service.promotion_waits}
        neck = service.bottleneck
        table.add_row(m(service.service), *(duration(waits.get(stage)) for stage in stages),
                      f"{m(neck.from_environment)} -> {m(neck.to_environment)}" if neck else "-")
    if window.promotion_waits:
        neck = window.bottleneck
        table.add_row("all", *(duration(w.wait.median) for w in window.promotion_waits),
                      f"{m(neck.from_environment)} -> {m(neck.to_environment)}" if neck else "-",
                      style="bold")
    console.print(table)
    console.print()


def _data_quality(console: Any, snapshot: Snapshot) -> None:
    quality = snapshot.data_quality
    notes = []
    if quality.manifests_skipped:
        notes.append(f"{len(quality.manifests_skipped)} manifest(s) not read (not parseable, or "
                     "belonging to no environment: devex status lists them)")
    if quality.revisions_not_found:
        notes.append(f"{len(quality.revisions_not_found)} deployed revision(s) are not in the "
                     "app repositories")
    if quality.deployments_without_change_set:
        notes.append(f"{quality.deployments_without_change_set} deployment(s) have no change set "
                     "(first deployments, or no app repository)")
    down = [name for name, up in snapshot.sources.items() if not up]
    if down:
        notes.append(f"sources that failed: {', '.join(m(name) for name in down)}")
    if notes:
        console.print("Data quality: " + "; ".join(notes) + " (--format json: data_quality).")



def _width() -> int | None:
    """The terminal's width, or 120 columns in a log (rich would use 80)."""
    import sys

    return None if sys.stdout.isatty() else 120
