"""`devex status`: what is deployed where now."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

import sys
from typing import Annotated

import typer

from devex_cli.commands.options import TableFormat, TableFormatOption


def status(
    ctx: typer.Context,
    gitops: Annotated[str | None, typer.Option(
        metavar="PATH|URL",
        help="GitOps repository: a path or a git URL (default: $DEVEX_GITOPS_REPO, "
             "else the current folder).")] = None,
    environment: Annotated[list[str] | None, typer.Option(
        metavar="ENV", help="Only this environment (repeatable).")] = None,
    output_format: TableFormatOption = TableFormat.TABLE,
    offline: Annotated[bool, typer.Option(
        help="Read the GitOps repository alone (no Argo CD).")] = False,
) -> None:
    """What is deployed where now: service x environment, revision or version and its age."""
    from datetime import UTC, datetime

    from devex_cli.status import read_status
    from devex_cli.views.status import render_status_json, render_table

    report = read_status(ctx.obj.settings(), gitops=gitops, environments=environment or (),
                         offline=offline)
    if output_format is TableFormat.JSON:
        sys.stdout.write(render_status_json(report) + "\n")
    else:
        render_table(report, now=datetime.now(UTC), color=not ctx.obj.no_color)
