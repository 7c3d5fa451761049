"""The example pipeline is valid YAML and every devex command in it exists with those flags."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Result

Devex = Callable[..., Result]
PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "pipelines" / \
    "bitbucket-pipelines.yml"


def scripts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("script", "after-script") and isinstance(value, list):
                yield from (line for line in value if isinstance(line, str))
            else:
                yield from scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from scripts(item)


def test_every_devex_line_uses_real_commands_and_flags(devex: Devex) -> None:
    lines = [line for line in scripts(yaml.safe_load(PIPELINE.read_text()))
             if line.startswith("devex ")]
    assert len(lines) >= 8
    for line in lines:
        words = shlex.split(re.sub(r"\$\(.*?\)|\$\{.*?\}|\$\w+", "X", line.split(" > ")[0]
                                   .split(" || ")[0]))
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        command = [words[1]]
        if words[1] in ("gate", "report") or (words[1] == "push-metrics"
                                               and not words[2].startswith("-")):
            command.append(words[2])
        help_text = devex(*command, "--help").out
        for flag in flags:
            assert flag in help_text, f"{line}: {flag} is not an option of devex {command}"
