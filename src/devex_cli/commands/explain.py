"""`devex explain`: the evidence behind one figure of `devex collect`."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

import sys
from typing import Annotated

import typer

from devex_cli.commands.collect import collect_options
from devex_cli.commands.options import (
    GitOpsOption,
    OfflineOption,
    SinceOption,
    TableFormat,
    TableFormatOption,
    UntilOption,
)


def explain(
    ctx: typer.Context,
    figure: Annotated[str, typer.Argument(
        metavar="deployments|lead-time|change-failure-rate|recovery-time|bottleneck|tickets",
        help="The figure to explain.", show_default=False)],
    service: Annotated[str | None, typer.Option(
        metavar="NAME", help="The service (bottleneck without it: every service together, "
                             "the tables' 'all' row).")] = None,
    environment: Annotated[str | None, typer.Option(
        metavar="ENV", help="The environment (default: production; bottleneck: every stage; "
                            "tickets: the QA release).")] = None,
    gitops: GitOpsOption = None,
    since: SinceOption = "30d",
    until: UntilOption = None,
    offline: OfflineOption = False,
    output_format: TableFormatOption = TableFormat.TABLE,
) -> None:
    """The deployments, commits and arithmetic behind one figure of `devex collect`."""
    import json
    from datetime import UTC, datetime

    from devex_cli import explain as evidence
    from devex_cli.collect import collect_inputs
    from devex_cli.errors import UsageError
    from devex_cli.progress import progress

    if figure not in evidence.FIGURES:
        raise UsageError(f"unknown figure {figure!r}: explain one of "
                         f"{', '.join(evidence.FIGURES)}")
    if service is None and figure != "bottleneck":
        raise UsageError(f"explain {figure} needs --service NAME",
                         hint="only the bottleneck has an every-service figure ('all')")
    settings = ctx.obj.settings()
    now = datetime.now(UTC)
    options = collect_options(gitops, since, until, offline, now)
    with progress(quiet=ctx.obj.quiet) as step:
        collected = collect_inputs(settings, options, now=now, step=step)
    explained = evidence.explain(settings, collected,
                                 evidence.Request(figure, service, environment), gitops=gitops)
    if output_format is TableFormat.JSON:
        sys.stdout.write(json.dumps(explained, indent=2) + "\n")
    else:
        evidence.render_table(explained, color=not ctx.obj.no_color)
