"""`devex push-metrics`: pipeline metrics, or a Prometheus text file, to a Pushgateway."""

# No `from __future__ import annotations`: typer reads these annotations at each start.

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from devex_cli.commands.options import (
    STATUS_METAVAR,
    EnvironmentOption,
    Globals,
    ScaOption,
    ServiceOption,
    VeracodeOption,
    VersionOption,
    check_status,
)

app = typer.Typer(help="Pipeline metrics to a Prometheus Pushgateway.", invoke_without_command=True)


@dataclass(frozen=True)
class PushOptions:
    """Where and how to push: the options `push-metrics` takes before the event's name and
    again after it (`push-metrics --gateway URL tests ...` or `push-metrics tests --gateway URL`)."""

    gateway: str | None
    job: str | None
    grouping: tuple[str, ...]
    replace: bool
    delete: bool

    def after(self, before: "PushOptions | None") -> "PushOptions":
        """These options given after the event's name, over `before` given ahead of it."""
        if before is None:
            return self
        return PushOptions(self.gateway or before.gateway, self.job or before.job,
                           (*before.grouping, *self.grouping), self.replace or before.replace,
                           self.delete or before.delete)


def _push_parameters(job_default: str | None) -> list[inspect.Parameter]:
    """The five push options, declared once for the group and each event."""
    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=annotation)

    return [
        option("gateway", Annotated[str | None, typer.Option(
            metavar="URL", help="Pushgateway (default: $PUSHGATEWAY_URL).")], None),
        option("job", Annotated[str | None, typer.Option(
            metavar="NAME", help="The job of the grouping key.")], job_default),
        option("grouping", Annotated[list[str] | None, typer.Option(
            metavar="KEY=VALUE", help="More grouping labels (repeatable; keep them bounded: "
                                      "never a build number or a commit).")], None),
        option("replace", Annotated[bool, typer.Option(
            help="PUT: replace the whole group (default POST replaces only the metrics of the "
                 "same names).")], False),
        option("delete", Annotated[bool, typer.Option(help="DELETE the group.")], False),
    ]


def _with_push_options(*, job_default: str | None = None
                       ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the five push options (after its own): it receives them as one
    `push: PushOptions`, over those given before the event's name."""
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "push"]
        added = _push_parameters(job_default)

        @functools.wraps(command)
        def with_options(*args: Any, **kwargs: Any) -> None:
            given = PushOptions(kwargs.pop("gateway"), kwargs.pop("job"),
                                tuple(kwargs.pop("grouping") or ()), kwargs.pop("replace"),
                                kwargs.pop("delete"))
            ctx: typer.Context = kwargs["ctx"]
            command(*args, push=given.after(ctx.meta.get("push")), **kwargs)

        with_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *added])
        with_options.__annotations__ = {
            **{k: v for k, v in command.__annotations__.items() if k != "push"},
            **{p.name: p.annotation for p in added}}
        return with_options

    return decorate


@app.callback()
@_with_push_options(job_default="devex")
def push_metrics(
    ctx: typer.Context,
    from_file: Annotated[Path | None, typer.Option(
        "--from", metavar="FILE", help="Push a Prometheus text file, e.g. from devex collect.",
        dir_okay=False)] = None,
    *,
    push: PushOptions,
) -> None:
    """Push deployment, test or security metrics, or a Prometheus text file (--from)."""
    ctx.meta["push"] = push
    if ctx.invoked_subcommand is not None:
        return
    from devex_cli.errors import InputError, UsageError
    from devex_cli.metrics import pushgateway

    if from_file is None and not push.delete:
        raise UsageError("nothing to push",
                         hint="name an event (deployment, tests, security) or pass --from FILE")
    families: Sequence[object] = []
    if from_file is not None:
        try:
            text = from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {from_file}: {exc}") from None
        families = pushgateway.read_exposition(str(from_file), text)
    _push(ctx.obj, push, families, grouping={})


def _push(options: Globals, push: PushOptions, families: Sequence[object],
          grouping: dict[str, str]) -> None:
    from devex_cli.errors import UsageError
    from devex_cli.metrics import pushgateway

    settings = options.settings()
    if push.replace and push.delete:
        raise UsageError("--replace and --delete do not go together")
    url = pushgateway.gateway_url(settings, push.gateway)
    key = {**{k: v for k, v in grouping.items() if v},
           **pushgateway.parse_grouping(list(push.grouping))}
    method = "DELETE" if push.delete else "PUT" if push.replace else "POST"
    job = push.job if push.job is not None else "devex"  # the group's default
    where = pushgateway.push(settings, url, job=job, grouping=key,
                             families=families, method=method)  # type: ignore[arg-type]
    if not options.quiet:
        labels = ",".join(f"{k}={v}" for k, v in sorted(key.items()))
        sys.stderr.write(f"devex: {method} {len(families)} metric famil"
                         f"{'y' if len(families) == 1 else 'ies'} to {where} "
                         f"(job={job}{',' + labels if labels else ''})\n")


@app.command("deployment")
@_with_push_options()
def deployment(
    ctx: typer.Context,
    environment: EnvironmentOption,
    status: Annotated[str | None, typer.Option(
        metavar=STATUS_METAVAR,
        help="Where the deployment is (not needed with --delete).")] = None,
    service: ServiceOption = None,
    version: VersionOption = None,
    duration: Annotated[str | None, typer.Option(metavar="5m", help="How long it took.")] = None,
    at: Annotated[str | None, typer.Option(metavar="TIME", help="When (default: now).")] = None,
    *,
    push: PushOptions,
) -> None:
    """Last deployment status, time, version and duration per service and environment."""
    from datetime import UTC, datetime

    from devex_cli.metrics.pipeline_metrics import deployment_families
    from devex_cli.pipeline_context import deployed_version, pipeline_context, service_name
    from devex_cli.timeutil import parse_duration, parse_moment

    settings = ctx.obj.settings()
    name = service_name(service, settings.environ)
    if push.delete:
        _push(ctx.obj, push, [], {"service": name, "environment": environment})
        return
    state = check_status(status)
    now = datetime.now(UTC)
    pipeline, _ = pipeline_context(settings.environ, Path())
    families = deployment_families(
        service=name, environment=environment, status=state,
        version=deployed_version(version, pipeline),
        at=parse_moment(at, option="--at", now=now) if at else now,
        duration_seconds=parse_duration(duration, option="--duration").total_seconds()
        if duration else None)
    _push(ctx.obj, push, families, {"service": name, "environment": environment})


@app.command("tests")
@_with_push_options()
def tests(
    ctx: typer.Context,
    junit: Annotated[list[Path] | None, typer.Option(
        metavar="FILE", help="JUnit XML file (repeatable; not needed with --delete).")] = None,
    service: ServiceOption = None,
    *,
    push: PushOptions,
) -> None:
    """Test totals by result, pass ratio, duration and time of the last run."""
    from datetime import UTC, datetime

    from devex_cli.inputs.junit import parse_junit
    from devex_cli.metrics.pipeline_metrics import tests_families
    from devex_cli.pipeline_context import service_name

    name = service_name(service, ctx.obj.settings().environ)
    families = [] if push.delete else tests_families(parse_junit(junit or []), service=name,
                                                     at=datetime.now(UTC))
    _push(ctx.obj, push, families, {"service": name})


@app.command("security")
@_with_push_options()
def security(
    ctx: typer.Context,
    veracode: VeracodeOption = None,
    sca: ScaOption = None,
    service: ServiceOption = None,
    *,
    push: PushOptions,
) -> None:
    """Findings per severity and vulnerable dependencies per CVSS band of the last scan."""
    from datetime import UTC, datetime

    from devex_cli.inputs.security import read_security
    from devex_cli.metrics.pipeline_metrics import security_families
    from devex_cli.pipeline_context import service_name

    name = service_name(service, ctx.obj.settings().environ)
    families = [] if push.delete else security_families(read_security(veracode, sca),
                                                        service=name, at=datetime.now(UTC))
    _push(ctx.obj, push, families, {"service": name})
