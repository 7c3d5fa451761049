#!/usr/bin/env python3
"""The devex Bitbucket pipe: pipe variables in, one devex command run, its exit code out.

Bitbucket runs the pipe's image with the variables of the `pipe:` step as its environment (a YAML
list arrives as NAME_COUNT and NAME_0, NAME_1, ...) and the clone as its working folder. Secrets
(JIRA_API_TOKEN, TEAMS_WEBHOOK_*, ...) keep devex's own names and reach devex through the
environment only: they are never turned into arguments, and the command line printed to the log
has any credentials inside URLs masked. Exit codes are devex's: 0 success or allowed, 1 a check
failed (the gate blocked), 2 a usage or input error (a wrong pipe variable too), 3 an upstream.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

USAGE_ERROR = 2
COMMANDS = ("gate", "report", "push-metrics", "collect", "status")
EVENTS = ("deployment", "tests", "security")
EXIT_MEANING = {0: "success", 1: "a check failed: a gate blocked", 2: "usage or input error",
                3: "an upstream could not be read"}
class PipeError(Exception):
    """A pipe variable that devex cannot be run with (exit 2)."""


class Variables:
    """The pipe's variables, read the way Bitbucket passes them."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def required(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name)
        if value is None:
            raise PipeError(f"{name} is required: one of {', '.join(allowed)}")
        if value not in allowed:
            raise PipeError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def flag(self, name: str) -> bool:
        value = self.text(name)
        if value is None or value.lower() == "false":
            return False
        if value.lower() == "true":
            return True
        raise PipeError(f"{name} must be true or false, not {value!r}")

    def items(self, name: str) -> list[str]:
        """A list variable: a YAML list (NAME_COUNT, NAME_0...) or one string of shell words."""
        count = self.text(f"{name}_COUNT")
        if count is not None:
            if not count.isdigit():
                raise PipeError(f"{name}_COUNT must be a number, not {count!r}")
            return [self.environ.get(f"{name}_{index}", "") for index in range(int(count))]
        value = self.text(name)
        try:
            return shlex.split(value) if value else []
        except ValueError as exc:
            raise PipeError(f"{name} cannot be split into words: {exc}") from None


def _option(args: list[str], flag: str, value: str | None) -> None:
    if value is not None:
        args += [flag, value]


def _options(args: list[str], flag: str, values: list[str]) -> None:
    for value in values:
        args += [flag, value]


def _switch(args: list[str], flag: str, on: bool) -> None:
    if on:
        args.append(flag)


def _gate(v: Variables) -> list[str]:
    args = ["gate", "qa-release"]
    _option(args, "--environment", v.text("ENVIRONMENT"))
    _option(args, "--service", v.text("SERVICE"))
    _option(args, "--repo", v.text("REPO"))
    _option(args, "--head", v.text("HEAD"))
    _options(args, "--project", v.items("PROJECTS"))
    _option(args, "--ticket-pattern", v.text("TICKET_PATTERN"))
    _option(args, "--format", v.text("FORMAT"))
    _switch(args, "--fail-open", v.flag("FAIL_OPEN"))
    return args


def _deployment_status(v: Variables) -> str | None:
    """STATUS, else (in an after-script) what BITBUCKET_EXIT_CODE says of the step's script."""
    status = v.text("STATUS")
    exit_code = v.text("BITBUCKET_EXIT_CODE")
    if status is None and exit_code is not None:
        return "succeeded" if exit_code == "0" else "failed"
    return status


def _event(v: Variables, *, report: bool) -> list[str]:
    """The event options of `devex report` (a card) or `devex push-metrics` (metrics)."""
    event = v.required("EVENT", EVENTS)
    args = [event]
    if event == "deployment":
        _option(args, "--environment", v.text("ENVIRONMENT"))
        _option(args, "--status", _deployment_status(v))
        _option(args, "--service", v.text("SERVICE"))
        _option(args, "--version", v.text("VERSION"))
        _option(args, "--duration", v.text("DURATION"))
        if report:  # the card's button; metrics have no link
            _option(args, "--url", v.text("URL"))
        return args
    if event == "tests":
        _options(args, "--junit", v.items("JUNIT"))
        if report:
            _option(args, "--title", v.text("TITLE"))
    else:
        _option(args, "--veracode", v.text("VERACODE"))
        _option(args, "--sca", v.text("SCA"))
    if not report:  # a card takes its service from the context; metrics label it
        _option(args, "--service", v.text("SERVICE"))
    return args


def _report(v: Variables) -> list[str]:
    args = ["report", *_event(v, report=True)]
    _options(args, "--channel", v.items("CHANNELS"))
    _option(args, "--template", v.text("TEMPLATE"))
    _switch(args, "--dry-run", v.flag("DRY_RUN"))
    _switch(args, "--strict", v.flag("STRICT"))
    return args


def _push_metrics(v: Variables) -> list[str]:
    from_file = v.text("FROM_FILE")
    if from_file is not None and v.text("EVENT") is not None:
        raise PipeError("push-metrics takes EVENT or FROM_FILE, not both")
    event = ["--from", from_file] if from_file is not None else _event(v, report=False)
    args = ["push-metrics", *event]
    _option(args, "--gateway", v.text("GATEWAY"))
    _option(args, "--job", v.text("JOB"))
    _options(args, "--grouping", v.items("GROUPING"))
    _switch(args, "--replace", v.flag("REPLACE"))
    _switch(args, "--delete", v.flag("DELETE"))
    return args


def _collect(v: Variables) -> list[str]:
    args = ["collect"]
    _option(args, "--since", v.text("SINCE"))
    _option(args, "--until", v.text("UNTIL"))
    _option(args, "--format", v.text("FORMAT"))
    _switch(args, "--offline", v.flag("OFFLINE"))
    return args


def _status(v: Variables) -> list[str]:
    args = ["status"]
    _options(args, "--environment", v.items("ENVIRONMENTS"))
    _option(args, "--format", v.text("FORMAT"))
    _switch(args, "--offline", v.flag("OFFLINE"))
    return args


BUILDERS: dict[str, Callable[[Variables], list[str]]] = {
    "gate": _gate, "report": _report, "push-metrics": _push_metrics, "collect": _collect,
    "status": _status,
}


def devex_arguments(environ: Mapping[str, str]) -> list[str]:
    """The devex command line the pipe variables ask for (without the program name).

    Raises PipeError for a missing or wrong variable.
    """
    v = Variables(environ)
    command = v.required("COMMAND", COMMANDS)
    args: list[str] = []
    _option(args, "--config", v.text("CONFIG"))
    _switch(args, "--verbose", v.flag("DEBUG"))
    return [*args, *BUILDERS[command](v), *v.items("EXTRA_ARGS")]


def printable(args: list[str]) -> str:
    """The command line for the log, credentials inside URLs masked (devex's own masking: the
    pipe runs with devex's interpreter)."""
    from devex_cli.masking import mask

    return mask(shlex.join(["devex", *args]))


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        args = devex_arguments(environ)
    except PipeError as exc:
        print(f"devex pipe: {exc}", file=sys.stderr)
        return USAGE_ERROR
    output = Variables(environ).text("OUTPUT_FILE")
    print(f"devex pipe: {printable(args)}" + (f" > {output}" if output else ""), file=sys.stderr,
          flush=True)
    try:
        if output:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            with Path(output).open("w", encoding="utf-8") as stdout:
                code = subprocess.run(["devex", *args], stdout=stdout, check=False).returncode
        else:
            code = subprocess.run(["devex", *args], check=False).returncode
    except OSError as exc:  # devex missing from the image, or OUTPUT_FILE not writable
        print(f"devex pipe: cannot run devex: {exc}", file=sys.stderr)
        return USAGE_ERROR
    code = 128 - code if code < 0 else code  # killed by a signal, as a shell reports it
    print(f"devex pipe: exit {code} ({EXIT_MEANING.get(code, 'devex was stopped')})",
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
