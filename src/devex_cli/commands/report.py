"""`devex report`: pipeline events as Teams Adaptive Cards."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

from pathlib import Path
from typing import Annotated

import typer

from devex_cli.commands.options import (
    STATUS_METAVAR,
    EnvironmentOption,
    ScaOption,
    ServiceOption,
    VeracodeOption,
    VersionOption,
    check_status,
)

app = typer.Typer(help="Pipeline events as Teams Adaptive Cards.", no_args_is_help=True)

# The options every report takes.
ChannelOption = Annotated[list[str] | None, typer.Option(
    metavar="NAME", help="Send to this channel instead of the routing (repeatable; webhook from "
                         "TEAMS_WEBHOOK_<NAME>).")]
TemplateOption = Annotated[Path | None, typer.Option(
    metavar="FILE", help="Render this Jinja template instead of the event's own.")]
DryRunOption = Annotated[bool, typer.Option(
    help="Post nothing; print [{channel, payload}] as JSON.")]
StrictOption = Annotated[bool, typer.Option(
    help="Exit non-zero when the card cannot be built or posted (default: warn and exit 0).")]


@app.command("deployment")
def deployment(
    ctx: typer.Context,
    environment: EnvironmentOption,
    status: Annotated[str, typer.Option(metavar=STATUS_METAVAR,
                                        help="Where the deployment is.")],
    service: ServiceOption = None,
    version: VersionOption = None,
    url: Annotated[str | None, typer.Option(metavar="URL",
                                            help="Where the deployed service answers.")] = None,
    duration: Annotated[str | None, typer.Option(
        metavar="5m", help="How long the deployment took, when known.")] = None,
    at: Annotated[str | None, typer.Option(
        metavar="TIME", help="When it happened (RFC 3339; default: now).")] = None,
    channel: ChannelOption = None,
    template: TemplateOption = None,
    dry_run: DryRunOption = False,
    strict: StrictOption = False,
) -> None:
    """A deployment started, succeeded or failed: routed to deployments (and qa), or pr."""
    from devex_cli.notify import send

    check_status(status)
    send.deployment(ctx.obj.settings(), environment=environment, status=status, service=service,
                    version=version, url=url, duration=duration, at=at,
                    channels=channel or [], template=template, dry_run=dry_run, strict=strict,
                    offline=False)


@app.command("tests")
def tests(
    ctx: typer.Context,
    junit: Annotated[list[Path], typer.Option(metavar="FILE",
                                              help="JUnit XML file (repeatable).")],
    title: Annotated[str | None, typer.Option(metavar="TEXT", help="Card title.")] = None,
    channel: ChannelOption = None,
    template: TemplateOption = None,
    dry_run: DryRunOption = False,
    strict: StrictOption = False,
) -> None:
    """Test results from JUnit XML (pytest, jest-junit, Maven Surefire)."""
    from devex_cli.notify import send

    send.tests(ctx.obj.settings(), junit=junit, title=title, channels=channel or [],
               template=template, dry_run=dry_run, strict=strict)


@app.command("security")
def security(
    ctx: typer.Context,
    veracode: VeracodeOption = None,
    sca: ScaOption = None,
    channel: ChannelOption = None,
    template: TemplateOption = None,
    dry_run: DryRunOption = False,
    strict: StrictOption = False,
) -> None:
    """Security scan results, routed to security."""
    from devex_cli.notify import send

    send.security(ctx.obj.settings(), veracode=veracode, sca=sca, channels=channel or [],
                  template=template, dry_run=dry_run, strict=strict)
