"""JUnit XML in its common dialects (pytest, jest-junit, Maven Surefire), parsed with defusedxml
so that entity-expansion bombs are refused.

junitparser is the usual choice, but it reads `time` as a plain float and knows nothing of
Surefire's `flakyFailure`/`rerunFailure`; the dialects differ in only a handful of attributes,
handled here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse

from devex_cli.errors import InputError

_FLAKY = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")


@dataclass(frozen=True)
class FailedTest:
    suite: str
    name: str
    kind: str  # failure | error
    message: str


@dataclass(frozen=True)
class TestReport:
    files: tuple[str, ...]
    tests: int
    failures: int
    errors: int
    skipped: int
    flaky: int
    duration_seconds: float | None  # None: a file gave a time that is no duration (nan, -5)
    failed: tuple[FailedTest, ...] = field(default=())

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def pass_rate(self) -> float | None:
        """Passed / (tests run, skipped ones aside)."""
        ran = self.tests - self.skipped
        return self.passed / ran if ran else None

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.errors == 0


def parse_junit(paths: Sequence[Path]) -> TestReport:
    """Totals and failing tests of one or more JUnit XML files.

    Raises InputError naming the file and the problem when one cannot be read.
    """
    if not paths:
        raise InputError("no JUnit file given", hint="pass --junit FILE")
    tests = failures = errors = skipped = flaky = 0
    duration: float | None = 0.0
    failed: list[FailedTest] = []
    for path in paths:
        for suite in _suites(path):
            suite_name = suite.get("name") or path.stem
            cases = suite.findall("testcase")
            times = [_seconds(suite.get("time"), path)] if suite.get("time") else [
                _seconds(c.get("time"), path) for c in cases]
            # One unknown time makes the total unknown: a partial sum would understate it.
            duration = None if duration is None or None in times else \
                duration + sum(times)  # type: ignore[arg-type]  # None was ruled out
            for case in cases:
                tests += 1
                name = case.get("name") or "(unnamed)"
                classname = case.get("classname") or suite_name
                problem = case.find("failure")
                kind = "failure"
                if problem is None:
                    problem, kind = case.find("error"), "error"
                if problem is not None:
                    if kind == "failure":
                        failures += 1
                    else:
                        errors += 1
                    failed.append(FailedTest(classname, name, kind, _message(problem)))
                elif case.find("skipped") is not None:
                    skipped += 1
                elif any(case.find(tag) is not None for tag in _FLAKY):
                    flaky += 1
    return TestReport(tuple(str(p) for p in paths), tests, failures, errors, skipped, flaky,
                      duration, tuple(failed))


def _suites(path: Path) -> list[Element]:
    try:
        root = parse(str(path)).getroot()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="check the --junit path") from None
    except (ParseError, DefusedXmlException) as exc:
        raise InputError(f"{path} is not valid JUnit XML: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if root is None:
        raise InputError(f"{path} is empty")
    if root.tag == "testsuite":
        return [root]
    if root.tag == "testsuites":
        return list(root.iter("testsuite"))
    raise InputError(f"{path} is not JUnit XML: its root is <{root.tag}>, not <testsuites> or "
                     "<testsuite>")


def _seconds(value: str | None, path: Path) -> float | None:
    """The seconds of a `time` attribute; None for a number that is no duration (`nan`, `inf`,
    `1e400`, `-5`): odd, not worth refusing the report for, and never to reach a card or a
    metric."""
    if not value:
        return 0.0
    try:
        seconds = float(value.replace(",", ""))  # Surefire writes 1,234.5
    except ValueError:
        raise InputError(f"{path}: time {value!r} is not a number") from None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


_SPACES = re.compile(r"\s+")


def _message(problem: Element) -> str:
    """The message attribute (pytest, Surefire), else the first line of the text (jest)."""
    message = problem.get("message") or ""
    if not message and problem.text:
        message = next((line for line in problem.text.strip().splitlines() if line.strip()), "")
    return _SPACES.sub(" ", message).strip()
