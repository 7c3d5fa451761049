"""Which Teams channels an event goes to. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from devex_cli.config import RouteRule

EVENTS = ("deployment", "pr_deployment", "tests", "security")
MAIN_BRANCHES = ("main", "master", "release/*")


def is_main_branch(branch: str | None) -> bool:
    return branch is None or any(fnmatchcase(branch, pattern) for pattern in MAIN_BRANCHES)


def route(
    event: str,
    *,
    environment: str | None = None,
    branch: str | None = None,
    in_pr: bool = False,
    rules: Sequence[RouteRule] = (),
) -> list[str]:
    """The channels for an event: the first matching `[[report.routes]]` rule, else the
    contract's defaults.

    Defaults: a deployment from a PR or from a branch other than main, master or release/* goes
    to `pr`; other deployments to `deployments`, and those to qa to `qa` too; security results to
    `security`; test results to `pr` in a PR, else to `deployments`.
    """
    for rule in rules:
        if rule.event is not None and rule.event != event:
            continue
        if rule.environment is not None and not (
                environment is not None and fnmatchcase(environment, rule.environment)):
            continue
        if rule.branch is not None and not (branch is not None
                                            and fnmatchcase(branch, rule.branch)):
            continue
        return list(dict.fromkeys(rule.channels))
    if event in ("deployment", "pr_deployment"):
        if event == "pr_deployment" or in_pr or not is_main_branch(branch):
            return ["pr"]
        return ["deployments", "qa"] if environment == "qa" else ["deployments"]
    if event == "security":
        return ["security"]
    return ["pr"] if in_pr else ["deployments"]
