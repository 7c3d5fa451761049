"""The report commands: build the event, route it, render it, deliver it (or print it).

A notification never fails a deployment (CONTRACT): what the user named (a flag, a JUnit or scan
file, their own template, devex.toml) is checked first and its errors exit 2; past that point,
any failure to build or post the card is a warning and exit 0, or with `--strict` its own exit
code (3 upstream, 70 a devex bug).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devex_cli.config import Settings
from devex_cli.errors import ConfigError, DevexError, InputError, UpstreamError, UsageError
from devex_cli.notify import card_context, cards, routing
from devex_cli.pipeline_context import deployed_version, pipeline_context, service_name

log = logging.getLogger("devex.report")


@contextmanager
def _never_fails_the_deployment(strict: bool) -> Iterator[None]:
    """Usage, configuration and input errors go through (exit 2: the user's to fix); any other
    failure is a warning, or with `strict` raised for the CLI to map to its exit code."""
    try:
        yield
    except UsageError:
        raise
    except DevexError as exc:
        if strict:
            raise
        log.warning("no card sent: %s", exc)
    except Exception as exc:  # a bug in devex must not fail the pipeline step it reports on
        if strict:
            raise
        log.warning("no card sent: internal error: %s: %s (please report it; --strict -v shows "
                    "where)", type(exc).__name__, exc)


def deployment(settings: Settings, *, environment: str, status: str, service: str | None,
               version: str | None, url: str | None, duration: str | None, at: str | None,
               channels: Sequence[str], template: Path | None, dry_run: bool, strict: bool,
               offline: bool) -> None:
    from devex_cli.timeutil import parse_duration, parse_moment

    name = service_name(service, settings.environ)
    moment = parse_moment(at, option="--at", now=datetime.now(UTC)) if at else datetime.now(UTC)
    took = None
    if duration:
        seconds = int(parse_duration(duration, option="--duration").total_seconds())
        took = f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    with _never_fails_the_deployment(strict):
        _deployment(settings, name=name, environment=environment, status=status,
                    version=version, url=url, took=took, moment=moment, channels=channels,
                    template=template, dry_run=dry_run, strict=strict, offline=offline)


def _deployment(settings: Settings, *, name: str, environment: str, status: str,
                version: str | None, url: str | None, took: str | None, moment: datetime,
                channels: Sequence[str], template: Path | None, dry_run: bool, strict: bool,
                offline: bool) -> None:
    pipeline, local = pipeline_context(settings.environ, Path())
    changes = card_context.summarise_changes(settings, service=name, environment=environment,
                                       head=pipeline.commit, repo_path=Path(),
                                       jira=not offline and bool(settings.jira.url))
    production = environment in ("prod", "production") or environment == settings.gitops.production
    context = card_context.deployment_context(
        service=name, environment=environment, status=status,
        version=deployed_version(version, pipeline), url=url, duration=took,
        pipeline=pipeline, local=local, changes=changes, at=moment, production=production,
        fun=settings.report.fun, jira_url=settings.jira.url)
    if pipeline.step_triggerer_uuid:
        context["triggered_by"] = _triggerer(settings, pipeline.step_triggerer_uuid) or \
            context["triggered_by"]
    in_pr = pipeline.pr_id is not None
    event = "pr_deployment" if in_pr or not routing.is_main_branch(pipeline.branch) \
        else "deployment"
    if in_pr:
        context["pr"] = _with_pr_title(settings, context["pr"], pipeline.pr_id)
    targets = list(channels) or routing.route(event, environment=environment,
                                              branch=pipeline.branch, in_pr=in_pr,
                                              rules=settings.report.routes)
    _deliver(settings, f"{event}.json.j2", context, targets, template=template,
             dry_run=dry_run, strict=strict)


def tests(settings: Settings, *, junit: Sequence[Path], title: str | None,
          channels: Sequence[str], template: Path | None, dry_run: bool, strict: bool) -> None:
    from devex_cli.inputs.junit import parse_junit

    report = parse_junit(junit)
    with _never_fails_the_deployment(strict):
        pipeline, local = pipeline_context(settings.environ, Path())
        context = card_context.tests_context(report, title=title, pipeline=pipeline, local=local,
                                       fun=settings.report.fun)
        targets = list(channels) or routing.route("tests", branch=pipeline.branch,
                                                  in_pr=pipeline.pr_id is not None,
                                                  rules=settings.report.routes)
        _deliver(settings, "tests.json.j2", context, targets, template=template,
                 dry_run=dry_run, strict=strict)


def security(settings: Settings, *, veracode: Path | None, sca: Path | None,
             channels: Sequence[str], template: Path | None, dry_run: bool,
             strict: bool) -> None:
    from devex_cli.inputs.security import read_security

    report = read_security(veracode, sca)
    with _never_fails_the_deployment(strict):
        pipeline, local = pipeline_context(settings.environ, Path())
        context = card_context.security_context(report, pipeline=pipeline, local=local)
        targets = list(channels) or routing.route("security", branch=pipeline.branch,
                                                  in_pr=pipeline.pr_id is not None,
                                                  rules=settings.report.routes)
        _deliver(settings, "security.json.j2", context, targets, template=template,
                 dry_run=dry_run, strict=strict)


def _triggerer(settings: Settings, uuid: str) -> str | None:
    """Who triggered the step, from Bitbucket when it is configured."""
    from devex_cli.config import bitbucket_configured

    if not bitbucket_configured(settings):
        return None
    from devex_cli.sources.bitbucket import BitbucketClient  # the HTTP stack, now it is used

    try:
        with BitbucketClient(settings) as client:
            return client.user_name(uuid)
    except DevexError as exc:
        log.warning("%s; the card names the commit's author instead", exc)
        return None


def _with_pr_title(settings: Settings, pr: dict[str, Any] | None,
                   pr_id: str | None) -> dict[str, Any] | None:
    """The PR's title from Bitbucket when it is configured; the card goes out without it else."""
    from devex_cli.config import bitbucket_configured

    repo = settings.environ.get("BITBUCKET_REPO_SLUG")
    if pr is None or not pr_id or not repo or not bitbucket_configured(settings):
        return pr
    from devex_cli.sources.bitbucket import BitbucketClient  # the HTTP stack, now it is used

    try:
        with BitbucketClient(settings) as client:
            title = client.pull_request_title(repo, pr_id)
    except DevexError as exc:
        log.warning("%s; the card shows the PR without its title", exc)
        return pr
    return {**pr, "title": title or ""}


def _deliver(settings: Settings, template_name: str, context: dict[str, Any],
             channels: Sequence[str], *, template: Path | None, dry_run: bool,
             strict: bool) -> None:
    folder = cards.templates_folder(settings.report.templates_dir)
    if template is not None and not template.is_file():
        raise UsageError(f"--template {template} does not exist")
    try:
        card = cards.render_card(template_name, context, folder=folder, template_file=template,
                                 cache_dir=settings.cache_dir() / "templates")
    except InputError as exc:
        if template is not None or settings.report.templates_dir:
            raise  # the user's own template: theirs to fix
        raise RuntimeError(f"devex's own template: {exc}") from None
    body = cards.payload(card, settings.report.payload)
    if dry_run:
        sys.stdout.write(json.dumps([{"channel": c, "payload": body} for c in channels],
                                    indent=2, ensure_ascii=False) + "\n")
        return
    from devex_cli.notify import teams  # the HTTP stack only when something is posted

    failures: list[DevexError] = []
    for channel in channels:
        url = teams.webhook_for(channel, settings.environ)
        if url is None:
            log.warning("no webhook for channel %r: set %s to deliver there", channel,
                        teams.variable_for(channel))
            continue
        try:
            teams.check_webhook(channel, url)
            status = teams.post(url, body, settings.http)
        except (ConfigError, UpstreamError) as exc:
            log.warning("not delivered to %s: %s", channel, exc)
            failures.append(exc)
            continue
        log.info("delivered to %s (%d)", channel, status)
    if failures and strict:
        raise failures[0]
