"""Settings from devex.toml and the environment, validated, with errors that name the key.

Precedence: command-line flag > environment > file > default. Secrets (tokens, webhook URLs)
come from the environment only and are registered for masking when read.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from devex_cli.errors import ConfigError

CONFIG_FILE_NAME = "devex.toml"


@dataclass(frozen=True)
class GitOpsSettings:
    repo: str | None = None
    branch: str | None = None
    manifests: tuple[str, ...] = ()  # none: the layout is discovered
    environments: tuple[str, ...] = ()
    production: str | None = None
    third_party: tuple[str, ...] = ()  # globs on image names that are not the organisation's


@dataclass(frozen=True)
class JiraSettings:
    url: str | None = None
    projects: tuple[str, ...] = ()
    ticket_pattern: str | None = None
    batch_size: int = 100
    concurrency: int = 4
    incident_jql: str | None = None  # e.g. 'project = OPS AND issuetype = Incident'


@dataclass(frozen=True)
class ArgoCDSettings:
    selector: str | None = None
    projects: tuple[str, ...] = ()
    applications: Mapping[str, str] = field(default_factory=dict)  # name -> "service/env"


@dataclass(frozen=True)
class BitbucketSettings:
    workspace: str | None = None  # default: $BITBUCKET_WORKSPACE
    concurrency: int = 8


@dataclass(frozen=True)
class RouteRule:
    """A routing rule of `[[report.routes]]`: the first rule that matches decides the channels."""

    event: str | None = None  # deployment | pr_deployment | tests | security
    environment: str | None = None  # a glob, e.g. "prod*"
    branch: str | None = None  # a glob, e.g. "release/*"
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportSettings:
    payload: str = "envelope"  # envelope | bare
    fun: bool = True
    templates_dir: str | None = None
    routes: tuple[RouteRule, ...] = ()


@dataclass(frozen=True)
class GateSettings:
    environment: str = "qa"


@dataclass(frozen=True)
class ServiceSettings:
    image: str | None = None
    manifest: str | None = None
    aliases: tuple[str, ...] = ()
    repo: str | None = None  # a local path or a git URL
    bitbucket_repo: str | None = None  # repository slug when read through Bitbucket's API


@dataclass(frozen=True)
class HttpSettings:
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.5
    max_retry_after: float = 60.0
    max_response_bytes: int = 50 * 1024 * 1024  # an answer past it is an upstream error


@dataclass(frozen=True)
class CacheSettings:
    dir: str | None = None


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
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)
    source: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    def cache_dir(self) -> Path:
        """cache.dir ($DEVEX_CACHE_DIR), else $XDG_CACHE_HOME/devex, else ~/.cache/devex;
        created (or tightened) mode 0700, as it holds clones and answers of private systems."""
        from devex_cli.cache import private_folder

        if self.cache.dir:
            return private_folder(Path(self.cache.dir).expanduser())
        xdg = self.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".cache"
        return private_folder(base / "devex")


_SECTIONS: dict[str, type] = {
    "gitops": GitOpsSettings,
    "jira": JiraSettings,
    "argocd": ArgoCDSettings,
    "bitbucket": BitbucketSettings,
    "report": ReportSettings,
    "gate": GateSettings,
    "http": HttpSettings,
    "cache": CacheSettings,
}

# Environment variables that set a (non-secret) key; secrets are read by the sources themselves.
_ENV_KEYS: dict[str, tuple[str, str]] = {
    "DEVEX_GITOPS_REPO": ("gitops", "repo"),
    "JIRA_URL": ("jira", "url"),
    "DEVEX_CACHE_DIR": ("cache", "dir"),
}


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
    for variable, (section, key) in _ENV_KEYS.items():
        if value := env.get(variable):
            settings = replace(
                settings, **{section: replace(getattr(settings, section), **{key: value})}
            )
    for key in ("timeout", "max_response_bytes"):  # 0 would mean "no time" or "no answer"
        if getattr(settings.http, key) <= 0:
            raise ConfigError(f"{path}: http.{key} must be greater than 0")
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
        section_type = _SECTIONS.get(section)
        if section_type is None:
            known = ", ".join(sorted([*_SECTIONS, "services"]))
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
