"""docs/configuration.md, generated from the code: every devex.toml key (from the `_key`
declarations of devex_cli.config: type, default, example, the commands that read it) and every
environment variable devex reads (the registry below; a test scans the sources for any read it
does not list).

    python -m devex_cli.config_reference                          # print it
    python -m devex_cli.config_reference docs/configuration.md    # write it
    python -m devex_cli.config_reference --check docs/configuration.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any

from devex_cli import config
from devex_cli.config import JIRA_COMMANDS, REPORT_COMMANDS

ALL_READING_THE_FILE = ("gate qa-release", "status", "collect", "report deployment",
                        "report tests", "report security", "push-metrics")
_USE_BITBUCKET = ("collect", "report deployment")
_CACHE = ("status", "collect", "gate qa-release", *REPORT_COMMANDS, "demo")
_TABLES = ("status", "collect", "demo")
_PUSH = ("push-metrics",)
_PUSH_EVENTS = ("push-metrics deployment", "push-metrics tests", "push-metrics security")
_UNUSED = ()  # read into the pipeline context, used by no command yet


@dataclass(frozen=True)
class EnvironmentVariable:
    """An environment variable devex reads: `name` may be a pattern (`TEAMS_WEBHOOK_<CHANNEL>`),
    `overrides` the devex.toml key it sets, `secret` that it is masked in every output."""

    name: str
    doc: str
    commands: tuple[str, ...]
    example: str
    overrides: str | None = None
    secret: bool = False
    unset: str | None = None


ENVIRONMENT: tuple[EnvironmentVariable, ...] = (
    EnvironmentVariable(
        "DEVEX_CONFIG", "The devex.toml to read (`--config` overrides it).",
        ALL_READING_THE_FILE, "/etc/devex/devex.toml",
        unset="the nearest devex.toml from the current folder up to the repository root"),
    EnvironmentVariable(
        "DEVEX_GITOPS_REPO", "The GitOps repository, a path or a git URL.",
        ("status", "collect", "gate qa-release", "report deployment"),
        "https://bitbucket.org/acme/gitops.git", overrides="gitops.repo"),
    EnvironmentVariable(
        "DEVEX_CACHE_DIR", "The cache folder.", _CACHE, "/var/cache/devex",
        overrides="cache.dir"),
    EnvironmentVariable(
        "DEVEX_COLLECT_SERVICES", "Glob patterns on service names, separated by commas: the "
        "services this collector reads and exposes.", ("collect", "explain"), "pay*,checkout",
        overrides="collect.services"),
    EnvironmentVariable(
        "XDG_CACHE_HOME", "Where the default cache goes: `$XDG_CACHE_HOME/devex`.", _CACHE,
        "/home/ci/.cache", unset="`~/.cache` (from `$HOME`)"),
    EnvironmentVariable(
        "JIRA_URL", "Jira base URL.", JIRA_COMMANDS, "https://acme.atlassian.net",
        overrides="jira.url"),
    EnvironmentVariable(
        "JIRA_EMAIL", "With `JIRA_API_TOKEN`: Basic auth to Jira Cloud (`/rest/api/3`).",
        JIRA_COMMANDS, "devex-bot@acme.example",
        unset="the token alone is a Data Center personal access token (Bearer, `/rest/api/2`)"),
    EnvironmentVariable(
        "JIRA_API_TOKEN", "Jira's API token (with `JIRA_EMAIL`), or a Data Center personal "
        "access token alone. devex never asks Jira anonymously.", JIRA_COMMANDS, "(a token)",
        secret=True, unset="Jira cannot be asked: an error where it must be"),
    EnvironmentVariable(
        "ARGOCD_SERVER", "Argo CD's API, `host[:port]` or a URL, as the `argocd` CLI names it "
        "(`--offline` ignores it).", ("status", "collect"), "argocd-server.argocd.svc:443",
        unset="Argo CD is not read: deployment times come from the GitOps commits"),
    EnvironmentVariable(
        "ARGOCD_AUTH_TOKEN", "Argo CD token (Bearer).", ("status", "collect"), "(a token)",
        secret=True),
    EnvironmentVariable(
        "BITBUCKET_API_URL", "Bitbucket's API.", _USE_BITBUCKET, "https://api.bitbucket.org/2.0",
        unset="`{bitbucket_api}`"),
    EnvironmentVariable(
        "BITBUCKET_API_USER", "With `BITBUCKET_API_TOKEN`: Basic auth (an Atlassian API token).",
        _USE_BITBUCKET, "devex-bot@acme.example",
        unset="the token alone is a repository or workspace access token (Bearer)"),
    EnvironmentVariable(
        "BITBUCKET_API_TOKEN", "Bitbucket token; with a workspace, app repositories without a "
        "local `repo` are read through the API (`collect`), and cards name the PR and who "
        "triggered the step (`report deployment`).", _USE_BITBUCKET, "(a token)", secret=True,
        unset="Bitbucket's API is not used"),
    EnvironmentVariable(
        "TEAMS_WEBHOOK_<CHANNEL>", "Teams Workflows webhook of a channel: its name upper-cased, "
        "every character but letters and digits as `_` (`TEAMS_WEBHOOK_DEPLOYMENTS`, `_PR`, "
        "`_QA`, `_SECURITY`, ...).", REPORT_COMMANDS,
        "https://prod-00.westeurope.logic.azure.com/workflows/...", secret=True,
        unset="a routed channel without one is a warning"),
    EnvironmentVariable(
        "PUSHGATEWAY_URL", "Pushgateway base URL (`--gateway` overrides it).",
        (*_PUSH, *_PUSH_EVENTS), "http://pushgateway.monitoring.svc:9091",
        unset="`--gateway` is needed"),
    EnvironmentVariable(
        "PUSHGATEWAY_USERNAME", "Basic auth to the Pushgateway (or `user:password@` in the URL).",
        (*_PUSH, *_PUSH_EVENTS), "devex"),
    EnvironmentVariable(
        "PUSHGATEWAY_PASSWORD", "Basic auth to the Pushgateway.", (*_PUSH, *_PUSH_EVENTS),
        "(a password)", secret=True),
    EnvironmentVariable(
        "NO_COLOR", "Any non-empty value: no colours, as `--no-color`.", _TABLES, "1"),
    EnvironmentVariable(
        "CI", "Any non-empty value: no progress line on stderr.", ("collect", "demo"), "true"),
)

# Bitbucket Pipelines sets these in every step; devex reads them as defaults.
PIPELINE: tuple[EnvironmentVariable, ...] = (
    EnvironmentVariable(
        "BITBUCKET_COMMIT", "The commit: `--head` of the gate, the card's commit and change set, "
        "the default `--version`.",
        ("gate qa-release", *REPORT_COMMANDS, "push-metrics deployment"), "58ddfd6a...",
        unset="the current folder's `HEAD`"),
    EnvironmentVariable("BITBUCKET_BRANCH", "The branch: routing, and the card's branch.",
                        REPORT_COMMANDS, "main", unset="the current folder's branch"),
    EnvironmentVariable("BITBUCKET_TAG", "Read into the pipeline context; unused yet.", _UNUSED,
                        "v1.4.2"),
    EnvironmentVariable("BITBUCKET_PR_ID", "A PR: routing to `pr`, the card's PR link.", REPORT_COMMANDS,
                        "128"),
    EnvironmentVariable("BITBUCKET_PR_DESTINATION_BRANCH", "The PR's destination, on the card.",
                        REPORT_COMMANDS, "main"),
    EnvironmentVariable(
        "BITBUCKET_REPO_SLUG", "The repository: the default `--service`, the card's repository, "
        "the PR's title from Bitbucket.", ("gate qa-release", *REPORT_COMMANDS, *_PUSH_EVENTS),
        "payments", unset="`--service` is needed"),
    EnvironmentVariable("BITBUCKET_WORKSPACE", "The default of `bitbucket.workspace`.",
                        _USE_BITBUCKET, "acme"),
    EnvironmentVariable("BITBUCKET_BUILD_NUMBER", "The pipeline's number and link, on the card.",
                        REPORT_COMMANDS, "1042"),
    EnvironmentVariable("BITBUCKET_DEPLOYMENT_ENVIRONMENT",
                        "Read into the pipeline context; unused yet.", _UNUSED, "production"),
    EnvironmentVariable("BITBUCKET_GIT_HTTP_ORIGIN", "Links to the commit, PR and pipeline.",
                        REPORT_COMMANDS, "https://bitbucket.org/acme/payments"),
    EnvironmentVariable("BITBUCKET_EXIT_CODE", "Read into the pipeline context; unused yet.",
                        _UNUSED, "0"),
    EnvironmentVariable("BITBUCKET_PIPELINE_UUID", "Read into the pipeline context; unused yet.",
                        _UNUSED, "{...}"),
    EnvironmentVariable("BITBUCKET_STEP_TRIGGERER_UUID",
                        "Who triggered the step, named through Bitbucket's API.",
                        ("report deployment",), "{...}"),
    EnvironmentVariable("BITBUCKET_CLONE_DIR", "Read into the pipeline context; unused yet.",
                        _UNUSED, "/opt/atlassian/pipelines/agent/build"),
)


@dataclass(frozen=True)
class Section:
    """A table of devex.toml: its heading and the dataclass that holds its keys."""

    heading: str
    settings_type: type
    path: str  # how a key is named in messages and in this reference: `jira.url`


def sections() -> tuple[Section, ...]:
    """Every table of devex.toml, in the order of the reference."""
    found = []
    for name, settings_type in config.SECTIONS.items():
        found.append(Section(f"[{name}]", settings_type, name))
        if settings_type is config.ReportSettings:
            found.append(Section("[[report.routes]]", config.RouteRule, "report.routes[]"))
    found.append(Section("[services.<name>]", config.ServiceSettings, "services.<name>"))
    return tuple(found)


def documented_fields(section: Section) -> Iterator[Field[Any]]:
    yield from fields(section.settings_type)


def default_of(key: Field[Any]) -> Any:
    if key.default is not MISSING:
        return key.default
    if key.default_factory is not MISSING:
        return key.default_factory()
    raise ValueError(f"{key.name} has no default")


def toml_type(key: Field[Any]) -> str:
    """The TOML type of a key, from its annotation; a new kind of key must be named here."""
    annotation = str(key.type)
    kinds = {"str": "string", "str | None": "string", "int": "integer >= 0",
             "float": "number >= 0", "bool": "boolean", "tuple[str, ...]": "list of strings",
             "Mapping[str, str]": "table of strings",
             "tuple[RouteRule, ...]": "array of tables"}
    if annotation not in kinds:
        raise ValueError(f"no TOML type for {key.name}: {annotation}")
    return kinds[annotation]


def toml_value(value: Any) -> str:
    """A default as it would be written in devex.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict) and not value:
        return "{}"
    raise ValueError(f"no TOML for the default {value!r}")


def _constants() -> dict[str, str]:
    """Values of the code that the texts name as `{name}`."""
    from devex_cli.sources.bitbucket import DEFAULT_API
    from devex_cli.sources.jira import MAX_KEYS_PER_REQUEST
    from devex_cli.tickets import DEFAULT_TICKET_PATTERN

    return {"ticket_pattern": DEFAULT_TICKET_PATTERN, "bitbucket_api": DEFAULT_API,
            "max_keys": str(MAX_KEYS_PER_REQUEST)}


def _fill(text: str, constants: dict[str, str]) -> str:
    # Only the names of constants: `{service}` in a template's description stays as it is.
    return re.sub(r"\{([a-z_]+)\}", lambda m: constants.get(m[1], m[0]), text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """Inline code that may hold backticks or pipes (a regular expression)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _cell(f"{fence}{pad}{text}{pad}{fence}")


def _commands(commands: Sequence[str]) -> str:
    return ", ".join(f"`{c}`" for c in commands) or "none yet"


def _default_cell(key: Field[Any], constants: dict[str, str]) -> str:
    value = default_of(key)
    unset = key.metadata.get("unset")
    if value is None:
        return f"unset: {_fill(unset, constants)}" if unset else "unset"
    written = _code(toml_value(value))
    return f"{written}: {_fill(unset, constants)}" if unset else written


def render() -> str:
    """The whole reference, as Markdown."""
    constants = _constants()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m devex_cli.config_reference docs/configuration.md` from",
        "     src/devex_cli/config.py and src/devex_cli/config_reference.py: edit those, not this"
        " file. -->",
        "",
        "devex reads `devex.toml` (found by `--config`, else `$DEVEX_CONFIG`, else the nearest",
        "`devex.toml` from the current folder up to the repository root), overridden by the",
        "environment, overridden by flags. An unknown key or a wrong type is an error naming the",
        "key (exit 2). Secrets come only from the environment and are masked in every output.",
        "",
        "## devex.toml",
        "",
    ]
    environment_keys = config.environment_keys()
    overridden = {f"{section}.{key}": variable
                  for variable, (section, key) in environment_keys.items()}
    for section in sections():
        lines += [f"### `{section.heading}`", ""]
        if section.settings_type.__doc__ and section.settings_type is config.RouteRule:
            lines += [" ".join(section.settings_type.__doc__.split()), ""]
        if section.settings_type is config.ServiceSettings:
            lines += ["One table per service, named as devex names it (`devex status` lists "
                      "them).", ""]
        lines += ["| key | type | default | example | read by | meaning |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key in documented_fields(section):
            if not key.metadata.get("doc"):
                raise ValueError(f"{section.heading} {key.name} has no documentation: declare it "
                                 "with config._key")
            doc = _fill(key.metadata["doc"], constants)
            variable = overridden.get(f"{section.path}.{key.name}")
            if variable:
                doc += f" Environment: `${variable}`."
            lines.append("| " + " | ".join([
                f"`{key.name}`", toml_type(key), _default_cell(key, constants),
                _code(key.metadata["example"]), _commands(key.metadata["commands"]),
                _cell(doc)]) + " |")
        lines.append("")
    lines += ["## Environment variables", ""]
    lines += _variables_table(ENVIRONMENT, constants)
    lines += ["", "### Bitbucket Pipelines' variables", "",
              "Set by Bitbucket Pipelines in every step; devex reads them as defaults (an empty "
              "value counts as unset).", ""]
    lines += _variables_table(PIPELINE, constants)
    lines += ["", "## Every key, with its example", "",
              "Not a recommended configuration: each key with the example above, as TOML "
              "(a test loads it).", "", "```toml", *example_file().splitlines(), "```", ""]
    return "\n".join(lines)


def _variables_table(variables: Sequence[EnvironmentVariable],
                     constants: dict[str, str]) -> list[str]:
    rows = ["| variable | meaning | unset | example | read by |",
            "| --- | --- | --- | --- | --- |"]
    for variable in variables:
        doc, unset = variable.doc, variable.unset
        if variable.overrides:
            doc = f"Overrides `{variable.overrides}`. {doc}"
            unset = unset or f"`{variable.overrides}` from devex.toml"
        if variable.secret:
            doc += " Secret: masked in every output."
        rows.append("| " + " | ".join([
            f"`{variable.name}`", _cell(_fill(doc, constants)),
            _cell(_fill(unset, constants)) if unset else "",
            _code(variable.example), _commands(variable.commands)]) + " |")
    return rows


def example_file() -> str:
    """A devex.toml with every key set to its example."""
    blocks = []
    for section in sections():
        heading = (section.heading.replace("<name>", "payments")
                   if section.settings_type is config.ServiceSettings else section.heading)
        keys = [f"{key.name} = {key.metadata['example']}" for key in documented_fields(section)
                if key.type != "tuple[RouteRule, ...]"]  # written as [[report.routes]] below
        blocks.append("\n".join([heading, *keys]))
    return "\n\n".join(blocks) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    text = render()
    if not paths:
        sys.stdout.write(text)
        return 0
    from pathlib import Path

    target = Path(paths[0])
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{target} is stale: run python -m devex_cli.config_reference "
                             f"{target}\n")
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
