"""Settings from devex.toml and the environment, validated, with errors that name the key.

Precedence: command-line flag > environment > file > default. Secrets (tokens, webhook URLs)
come from the environment only and are registered for masking when read.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from devex_cli.errors import ConfigError

CONFIG_FILE_NAME = "devex.toml"


# Every key is declared with `_key`: its default, and the documentation that
# docs/configuration.md is generated from (python -m devex_cli.config_reference; a test fails when
# a key has none, or when the file differs from what the code says).
def _key(default: Any = None, *, doc: str, example: str, commands: tuple[str, ...],
         unset: str | None = None, env: str | None = None,
         factory: Callable[[], Any] | None = None) -> Any:
    """A settings field with its reference entry: `doc` says what it does, `example` is a TOML
    value, `commands` the commands that read it, `unset` what happens without it (for a None or
    empty default), `env` the environment variable that overrides it."""
    metadata = {"doc": doc, "example": example, "commands": commands, "unset": unset, "env": env}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# Who reads what; a test checks that each of these is a devex command.
_READ_GITOPS = ("status", "collect", "gate qa-release", "report deployment")
JIRA_COMMANDS = ("gate qa-release", "collect", "report deployment")
_USE_ARGOCD = ("status", "collect")
REPORT_COMMANDS = ("report deployment", "report tests", "report security")
_USE_HTTP = ("gate qa-release", "status", "collect", *REPORT_COMMANDS, "push-metrics")


@dataclass(frozen=True)
class GitOpsSettings:
    repo: str | None = _key(
        doc="The GitOps repository: a local path (relative to devex.toml) or a git URL, cloned "
            "or updated into the cache. `--gitops` overrides it.",
        example='"git@bitbucket.org:acme/gitops.git"', commands=_READ_GITOPS,
        unset="`status` reads the current folder; `collect` and `gate qa-release` need "
              "`--gitops`; `report deployment` lists no commits",
        env="DEVEX_GITOPS_REPO")
    branch: str | None = _key(
        doc="The branch Argo CD tracks, read along its first-parent history.",
        example='"main"', commands=_READ_GITOPS, unset="the repository's HEAD branch")
    manifests: tuple[str, ...] = _key(
        (), doc="Path templates of the manifests, with `{service}`, `{environment}` and `*` (any "
                "one folder); ending in `/`, a folder whose YAML files are all read; without "
                "`{environment}`, production alone. Replaces discovery.",
        example='["apps/{service}/overlays/{environment}/"]', commands=_READ_GITOPS,
        unset="the layout is discovered (docs/gitops-layouts.md)")
    history: str = _key(
        "first-parent", doc="Which commits are the history: `first-parent` (the branch's own "
        "chain; a merge that brings a tag change is the deployment) or `all` (every commit but "
        "merges, in committer-time order, for teams whose `git pull` merges put the branch's "
        "own commits on second parents).", example='"all"', commands=_READ_GITOPS)
    environments: tuple[str, ...] = _key(
        (), doc="The environments in order of promotion; the others are dropped.",
        example='["dev", "qa", "preprod", "prod"]', commands=_READ_GITOPS,
        unset="every environment found, ordered by the usual names (dev, test, qa, uat, "
              "staging, preprod, prod), unknown ones after them alphabetically")
    production: str | None = _key(
        doc="The production environment.", example='"prod"', commands=_READ_GITOPS,
        unset="`prod`, else `production`")
    third_party: tuple[str, ...] = _key(
        (), doc="Glob patterns on image names that are not the organisation's, added to those "
                "recognised by their tags (never a commit).",
        example='["docker.io/bitnami/*"]', commands=_READ_GITOPS,
        unset="only the images recognised by their tags")


@dataclass(frozen=True)
class JiraSettings:
    url: str | None = _key(
        doc="Jira base URL; tickets link to `<url>/browse/KEY`.",
        example='"https://acme.atlassian.net"', commands=JIRA_COMMANDS,
        unset="no Jira; `gate qa-release` exits 2 when the commits name tickets, `collect` "
              "shows tickets without fix versions and reads no incidents",
        env="JIRA_URL")
    projects: tuple[str, ...] = _key(
        (), doc="Only keys of these Jira projects count as tickets (`--project` overrides it "
                "in `gate qa-release`).",
        example='["PAY", "WEB"]', commands=JIRA_COMMANDS, unset="every key the pattern finds")
    ticket_pattern: str | None = _key(
        doc="Regular expression of ticket keys, searched in whole commit messages "
            "(`--ticket-pattern` overrides it in `gate qa-release`).",
        example=r"'\b(PAY|WEB)-[0-9]+\b'", commands=JIRA_COMMANDS, unset="`{ticket_pattern}`")
    batch_size: int = _key(
        100, doc="Ticket keys per Jira request (capped at the most one request takes, {max_keys}).",
        example="50", commands=JIRA_COMMANDS)
    concurrency: int = _key(4, doc="Jira requests at once.", example="2", commands=JIRA_COMMANDS)
    incident_jql: str | None = _key(
        doc="JQL of incident tickets, which count as failures of the service named by their "
            "component or label.",
        example='"project = OPS AND issuetype = Incident"', commands=("collect",),
        unset="no incidents are read")


@dataclass(frozen=True)
class ArgoCDSettings:
    selector: str | None = _key(
        doc="Label selector narrowing the Argo CD applications read.", example='"team=shop"',
        commands=_USE_ARGOCD, unset="every application the token may see")
    projects: tuple[str, ...] = _key(
        (), doc="Argo CD projects whose applications are read.", example='["shop"]',
        commands=_USE_ARGOCD, unset="every project")
    applications: Mapping[str, str] = _key(
        doc="Application name -> `service/environment`, for the applications devex cannot map "
            "from their source paths itself.",
        example='{ "legacy-payments" = "payments/prod" }', commands=_USE_ARGOCD,
        unset="only the applications devex maps itself", factory=dict)


@dataclass(frozen=True)
class BitbucketSettings:
    workspace: str | None = _key(
        doc="Workspace of the app repositories read through Bitbucket's API (with "
            "`BITBUCKET_API_TOKEN`), for services without a local `repo`.",
        example='"acme"', commands=("collect", "report deployment"),
        unset="`$BITBUCKET_WORKSPACE`")
    concurrency: int = _key(8, doc="Bitbucket requests at once.", example="4",
                            commands=("collect",))


@dataclass(frozen=True)
class RouteRule:
    """A routing rule of `[[report.routes]]`: the first rule that matches decides the channels."""

    event: str | None = _key(
        doc="The event the rule is for: `deployment`, `pr_deployment`, `tests` or `security`.",
        example='"deployment"', commands=REPORT_COMMANDS, unset="any event")
    environment: str | None = _key(
        doc="Glob on the deployment's environment (tests and security events have none, so a "
            "rule with it never matches them).",
        example='"prod*"', commands=("report deployment",), unset="any environment")
    branch: str | None = _key(
        doc="Glob on the branch (`$BITBUCKET_BRANCH`).", example='"release/*"',
        commands=REPORT_COMMANDS, unset="any branch")
    channels: tuple[str, ...] = _key(
        (), doc="The channels the event goes to, each posted to `$TEAMS_WEBHOOK_<CHANNEL>`.",
        example='["deployments", "leadership"]', commands=REPORT_COMMANDS,
        unset="a matching rule sends the event nowhere")


@dataclass(frozen=True)
class ReportSettings:
    payload: str = _key(
        "envelope", doc="`envelope`: the Teams Workflows message with the card attached; "
                        "`bare`: the card alone, for hand-built flows.",
        example='"bare"', commands=REPORT_COMMANDS)
    fun: bool = _key(
        True, doc="Small notes on the cards (a Friday-afternoon production deployment, a "
                  "thousand tests all green).",
        example="false", commands=("report deployment", "report tests"))
    templates_dir: str | None = _key(
        doc="Folder of Jinja card templates replacing the shipped ones (relative to the current "
            "folder).",
        example='"ci/teams-templates"', commands=REPORT_COMMANDS, unset="the templates shipped with devex")
    routes: tuple[RouteRule, ...] = _key(
        (), doc="Routing rules, `[[report.routes]]` tables: the first that matches decides the "
                "channels (`--channel` replaces the routing).",
        example='[{ event = "security", channels = ["security", "leadership"] }]',
        commands=REPORT_COMMANDS, unset="the default routing (README, `devex report`)")


@dataclass(frozen=True)
class GateSettings:
    environment: str = _key(
        "qa", doc="The environment `gate qa-release` checks (`--environment` overrides it); "
                  "`collect` calls it the QA release where the repository has it (else the "
                  "environment before production).",
        example='"uat"', commands=("gate qa-release", "collect"))


@dataclass(frozen=True)
class ServiceSettings:
    image: str | None = _key(
        doc="The image that is this service (where a path holds several of the "
            "organisation's images).",
        example='"ghcr.io/acme/payments-api"', commands=_READ_GITOPS,
        unset="chosen by its name, or the only own image of its path")
    manifest: str | None = _key(
        doc="A path template (as in `gitops.manifests`) for this service alone.",
        example='"envs/{environment}/payments.yaml"', commands=_READ_GITOPS,
        unset="`gitops.manifests`, else discovery")
    aliases: tuple[str, ...] = _key(
        (), doc="Earlier names of the service (after a path or image rename) whose history is "
                "this service's.",
        example='["payment"]', commands=_READ_GITOPS, unset="no earlier names")
    repo: str | None = _key(
        doc="The service's app repository, a local path (relative to devex.toml) or a git URL: "
            "change sets and lead times, and which digits-only tags are commits.",
        example='"../payments"', commands=("status", "collect"),
        unset="Bitbucket's API when configured, else no lead times for the service")
    bitbucket_repo: str | None = _key(
        doc="Repository slug when the app repository is read through Bitbucket's API.",
        example='"payments-api"', commands=("collect",), unset="the service's name")


@dataclass(frozen=True)
class HttpSettings:
    timeout: float = _key(30.0, doc="Seconds per request (greater than 0).", example="10.0",
                          commands=_USE_HTTP)
    retries: int = _key(4, doc="Retries on connection errors, timeouts, 429 and 5xx.",
                        example="2", commands=_USE_HTTP)
    backoff: float = _key(0.5, doc="Seconds of the first wait; exponential with jitter after it.",
                          example="1.0", commands=_USE_HTTP)
    max_retry_after: float = _key(60.0, doc="Cap, in seconds, on a server's `Retry-After`.",
                                  example="30.0", commands=_USE_HTTP)
    max_response_bytes: int = _key(
        50 * 1024 * 1024, doc="Largest answer read; a larger one is an upstream error (exit 3).",
        example="104857600", commands=_USE_HTTP)


@dataclass(frozen=True)
class CacheSettings:
    dir: str | None = _key(
        doc="The cache: clones, the GitOps reader's state, deployment records, Argo CD history, "
            "API answers, compiled templates; created mode 0700. Deleted, the next run is "
            "slower and deployments older than Argo CD's last 10 syncs are timed by their "
            "GitOps commits.",
        example='"/var/cache/devex"',
        commands=("status", "collect", "gate qa-release", *REPORT_COMMANDS),
        unset="`$XDG_CACHE_HOME/devex`, else `~/.cache/devex`", env="DEVEX_CACHE_DIR")


@dataclass(frozen=True)
class CollectSettings:
    services: tuple[str, ...] = _key(
        (), doc="Glob patterns on service names (as devex names them: `devex status` lists "
                "them): a collector reads and exposes only these services' deployments, change "
                "sets, Argo CD applications and incidents, so that collectors side by side can "
                "split a large organisation by service set (docs/performance.md). A match for "
                "none of the repository's services is an input error (exit 2); a pattern that "
                "matches none is named in a warning. In the environment, patterns separated by "
                "commas.",
        example='["pay*", "checkout"]', commands=("collect", "explain"),
        unset="every service of the GitOps repository", env="DEVEX_COLLECT_SERVICES")


@dataclass(frozen=True)
class Settings:
    gitops: GitOpsSettings = field(default_factory=GitOpsSettings)
    jira: JiraSettings = field(default_factory=JiraSettings)
    argocd: ArgoCDSettings = field(default_factory=ArgoCDSettings)
    bitbucket: BitbucketSettings = field(default_factory=BitbucketSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    collect: CollectSettings = field(default_factory=CollectSettings)
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)
    # not keys of the file: where it was read from, and the environment read with it
    source: Path | None = field(default=None, metadata={"internal": True})
    environ: Mapping[str, str] = field(default_factory=dict, repr=False,
                                       metadata={"internal": True})

    def cache_dir(self) -> Path:
        """cache.dir ($DEVEX_CACHE_DIR), else $XDG_CACHE_HOME/devex, else ~/.cache/devex;
        created (or tightened) mode 0700, as it holds clones and answers of private systems."""
        from devex_cli.cache import private_folder

        if self.cache.dir:
            return private_folder(Path(self.cache.dir).expanduser())
        xdg = self.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".cache"
        return private_folder(base / "devex")


SECTIONS: dict[str, type] = {
    "gitops": GitOpsSettings,
    "jira": JiraSettings,
    "argocd": ArgoCDSettings,
    "bitbucket": BitbucketSettings,
    "report": ReportSettings,
    "gate": GateSettings,
    "http": HttpSettings,
    "cache": CacheSettings,
    "collect": CollectSettings,
}


def environment_keys() -> dict[str, tuple[str, str]]:
    """The environment variables that set a (non-secret) key, from the keys' `env`: variable ->
    (section, key). Secrets are read by the sources themselves."""
    return {f.metadata["env"]: (section, f.name) for section, section_type in SECTIONS.items()
            for f in fields(section_type) if f.metadata.get("env")}


def find_config_file(start: Path, environ: Mapping[str, str]) -> Path | None:
    """$DEVEX_CONFIG, else the nearest devex.toml from `start` up to the repository root."""
    if env_path := environ.get("DEVEX_CONFIG"):
        return Path(env_path)
    folder = start.resolve()
    while True:
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists() or folder.parent == folder:
            return None
        folder = folder.parent


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read, validate and merge the configuration. Raises ConfigError naming the bad key."""
    env = dict(os.environ if environ is None else environ)
    path = config_file or find_config_file(cwd or Path.cwd(), env)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    settings = _from_mapping(raw, str(path) if path else CONFIG_FILE_NAME)
    if path is not None:
        settings = _relative_to(settings, path.parent)
    for variable, (section, key) in environment_keys().items():
        if text := env.get(variable):
            table = getattr(settings, section)
            value: str | tuple[str, ...] = text
            if isinstance(getattr(table, key), tuple):  # a list: comma-separated
                value = tuple(item.strip() for item in text.split(",") if item.strip())
                if not value:  # blanks and commas only: unset, as an empty value is
                    continue
            settings = replace(settings, **{section: replace(table, **{key: value})})
    for key in ("timeout", "max_response_bytes"):  # 0 would mean "no time" or "no answer"
        if getattr(settings.http, key) <= 0:
            raise ConfigError(f"{path}: http.{key} must be greater than 0")
    if settings.gitops.history not in ("first-parent", "all"):
        raise ConfigError(f"{path}: gitops.history must be \"first-parent\" or \"all\", not "
                          f"{settings.gitops.history!r}")
    if settings.report.payload not in ("envelope", "bare"):
        raise ConfigError(f"{path}: report.payload must be \"envelope\" or \"bare\", not "
                          f"{settings.report.payload!r}")
    return replace(settings, source=path, environ=env)


def _relative_to(settings: Settings, folder: Path) -> Settings:
    """Repository paths written in a devex.toml are relative to the file's folder."""

    def place(spec: str | None) -> str | None:
        if not spec or "://" in spec or ("@" in spec.split("/", 1)[0]) or Path(spec).is_absolute():
            return spec
        return str(folder / Path(spec).expanduser())

    return replace(
        settings,
        gitops=replace(settings.gitops, repo=place(settings.gitops.repo)),
        services={name: replace(s, repo=place(s.repo)) for name, s in settings.services.items()},
    )


def _from_mapping(raw: Mapping[str, Any], origin: str) -> Settings:
    values: dict[str, Any] = {}
    for section, content in raw.items():
        if section == "services":
            values["services"] = _services(content, origin)
            continue
        section_type = SECTIONS.get(section)
        if section_type is None:
            known = ", ".join(sorted([*SECTIONS, "services"]))
            raise ConfigError(f"{origin}: unknown section [{section}] (known: {known})")
        values[section] = _section(section_type, content, section, origin)
    return Settings(**values)


def _services(content: Any, origin: str) -> dict[str, ServiceSettings]:
    if not isinstance(content, Mapping):
        raise ConfigError(f"{origin}: [services] must be a table of [services.<name>] tables")
    return {
        name: _section(ServiceSettings, table, f"services.{name}", origin)
        for name, table in content.items()
    }


def _section(section_type: type, content: Any, where: str, origin: str) -> Any:
    if not isinstance(content, Mapping):
        raise ConfigError(f"{origin}: {where} must be a table")
    known = {f.name: f for f in fields(section_type)}
    values: dict[str, Any] = {}
    for key, value in content.items():
        if key not in known:
            raise ConfigError(
                f"{origin}: unknown key {where}.{key} (known: {', '.join(sorted(known))})"
            )
        type_name = str(known[key].type)
        if type_name.startswith("tuple[RouteRule"):
            if not isinstance(value, list):
                raise ConfigError(f"{origin}: {where}.{key} must be an array of tables "
                                  f"([[{where}.{key}]])")
            values[key] = tuple(_section(RouteRule, item, f"{where}.{key}[{n}]", origin)
                                for n, item in enumerate(value))
            continue
        values[key] = _coerce(value, type_name, f"{where}.{key}", origin)
    return section_type(**values)


def _coerce(value: Any, type_name: str, key: str, origin: str) -> Any:
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{origin}: {key} must be {expected}, not {type(value).__name__}")

    if type_name.startswith("Mapping[str, str]"):
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise wrong("a table of strings")
        return dict(value)
    if type_name.startswith("tuple[str"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong("a list of strings")
        return tuple(value)
    if type_name.startswith("str"):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if type_name == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise wrong("a non-negative integer")
        return value
    if type_name == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise wrong("a non-negative number")
        # TOML has `nan` and `inf`; neither is a time to wait, and `nan` slips past `< 0`.
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{origin}: {key} must be a finite non-negative number, "
                              f"not {value!r}")
        return float(value)
    if type_name == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    raise AssertionError(f"no coercion for {type_name}")  # a schema bug, not user input


def bitbucket_workspace(settings: Settings) -> str | None:
    return settings.bitbucket.workspace or settings.environ.get("BITBUCKET_WORKSPACE")


def bitbucket_configured(settings: Settings) -> bool:
    """Whether Bitbucket's API can be asked: a token and a workspace (no HTTP stack needed to
    tell, so offline runs never load it)."""
    return bool(settings.environ.get("BITBUCKET_API_TOKEN") and bitbucket_workspace(settings))
