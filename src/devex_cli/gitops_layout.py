"""The contract's "GitOps layout" rules as pure functions: where a manifest's environment and
service come from (discovery, or configured templates), revisions in tags, which images are
services, and the promotion order of environments. No I/O."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from devex_cli.manifests import KUSTOMIZATION_FILES, is_yaml

_HEX_RUN = re.compile(r"(?<![A-Za-z0-9])[0-9a-fA-F]{7,40}(?![A-Za-z0-9])")
_PLACEHOLDER = re.compile(r"\{(service|environment)\}|\*")

# The usual environment names, in promotion order; unknown names come after, alphabetically.
_PROMOTION = [("local",), ("dev", "development"), ("test", "testing"), ("qa",), ("uat",),
              ("staging", "stage"), ("preprod", "pre-prod"), ("prod", "production")]
_ORDER = {name: rank for rank, names in enumerate(_PROMOTION) for name in names}
ENVIRONMENT_NAMES = frozenset(_ORDER)

# Folder names that say what a folder holds, never which service it is.
GENERIC_FOLDERS = frozenset({
    "apps", "app", "services", "overlays", "overlay", "envs", "env", "environments",
    "clusters", "k8s", "kubernetes", "manifests", "deploy", "deployments", "charts", "helm",
    "kustomize", "base", "bases", "components", "releases", "values",
})
BASE_FOLDERS = frozenset({"base", "bases"})
_VALUES_FILE = re.compile(r"^(?:values[-._](?P<a>.+)|(?P<b>.+)[-._]values|(?P<c>[^.]+))"
                          r"\.ya?ml$")


@dataclass(frozen=True)
class Location:
    """Where a manifest belongs: its unit (a folder read as one, or one file), its environment,
    and its service when the path names one (else its own image's name does)."""

    unit: str
    environment: str
    service: str | None
    is_file: bool = False


def locate(path: str, environments: frozenset[str]) -> Location | None:
    """The contract's discovery: a path holding an environment name as a whole folder name, or
    in a file name (`values-ENV.yaml`, `ENV.values.yaml`, `values.ENV.yaml`, `ENV.yaml`), is an
    environment's. Its service is the nearest folder above the environment that is neither an
    environment nor a generic word (for a file name, from the file's own folder), else the
    nearest below it; else None. A folder named `base`/`bases` is never an environment's."""
    if not is_yaml(path):
        return None
    folders = path.split("/")
    name = folders.pop()
    found = _VALUES_FILE.match(name)
    stem = next((g for g in found.groups() if g), None) if found else None
    if stem is not None and stem.lower() in environments and name not in KUSTOMIZATION_FILES:
        return Location(path, stem, _service_above(folders, len(folders), environments), True)
    if BASE_FOLDERS.intersection(folders):
        return None
    for index in range(len(folders) - 1, -1, -1):
        if folders[index].lower() in environments:
            service = (_service_above(folders, index, environments)
                       or _service_below(folders, index, environments))
            return Location("/".join(folders), folders[index], service)
    return None


def _service_above(folders: Sequence[str], index: int, environments: frozenset[str]) -> str | None:
    for folder in reversed(folders[:index]):
        if _names_a_service(folder, environments):
            return folder
    return None


def _service_below(folders: Sequence[str], index: int, environments: frozenset[str]) -> str | None:
    for folder in folders[index + 1 :]:
        if _names_a_service(folder, environments):
            return folder
    return None


def _names_a_service(folder: str, environments: frozenset[str]) -> bool:
    lower = folder.lower()
    return bool(folder) and lower not in environments and lower not in GENERIC_FOLDERS \
        and not folder.startswith(".")


@dataclass(frozen=True)
class ManifestTemplate:
    """A configured path template: `{service}`, `{environment}` (each matching the same text
    wherever it repeats), `*` for any one folder; a template ending in `/` names a folder whose
    YAML files are read as one. Without `{environment}` it describes production alone."""

    template: str
    service: str | None = None  # the service a `services.<name>.manifest` template belongs to

    @property
    def folder(self) -> bool:
        return self.template.endswith("/")

    def match(self, path: str, production: str) -> Location | None:
        """Where a file the template covers belongs, else None. A kustomization's unit is its
        folder (read as its build)."""
        if self.folder:
            found = self._regex.fullmatch(posixpath.dirname(path))
            if not found or not is_yaml(path):
                return None
            unit, is_file = posixpath.dirname(path), False
        else:
            found = self._regex.fullmatch(path)
            if not found:
                return None
            is_file = posixpath.basename(path) not in KUSTOMIZATION_FILES
            unit = path if is_file else posixpath.dirname(path)
        groups = found.groupdict()
        return Location(unit, groups.get("environment") or production,
                        groups.get("service") or self.service, is_file)

    @property
    def pathspec(self) -> str:
        glob = _PLACEHOLDER.sub("*", self.template)
        return ":(glob)" + (glob + "*" if self.folder else glob)

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        pattern, pos, seen = "", 0, set()
        text = self.template.rstrip("/")
        for found in _PLACEHOLDER.finditer(text):
            pattern += re.escape(text[pos : found.start()])
            name = found.group(1)
            if name is None:
                pattern += "[^/]+"
            else:
                pattern += f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)"
                seen.add(name)
            pos = found.end()
        return re.compile(pattern + re.escape(text[pos:]))


def locate_by_templates(path: str, templates: Sequence[ManifestTemplate],
                        production: str) -> Location | None:
    for template in templates:
        if found := template.match(path, production):
            return found
    return None


# -- tags and revisions ------------------------------------------------------------------------

def revision_in_tag(tag: str | None) -> str | None:
    """The first stand-alone run of 7-40 hex digits in a tag, lower-cased, else None.

    `58ddfd6`, a full SHA, `1.4.2-58ddfd6a`, `sha-58ddfd6` give one; `v20241105x`, `latest` and
    `29.0` do not. A run of digits only is returned too: callers keep it only where the app
    repository has that commit (see `is_digits_only`).
    """
    if not tag:
        return None
    found = _HEX_RUN.search(tag.split("@", 1)[0])
    return found.group(0).lower() if found else None


def is_digits_only(revision: str) -> bool:
    return revision.isdigit()


def same_commit(one: str | None, other: str | None) -> bool:
    """Two revisions naming one commit: equal, or one a prefix of the other (a short SHA, then
    the full one)."""
    return bool(one and other and (one.startswith(other) or other.startswith(one)))


# -- which images are services ------------------------------------------------------------------

def image_namespace(repository: str) -> str:
    """Registry and owner of an image: `ghcr.io/acme/app` -> `ghcr.io/acme`, `redis` ->
    `docker.io/library`, `bitnami/redis` -> `docker.io/bitnami`."""
    parts = repository.split("/")
    first = parts[0]
    has_registry = len(parts) > 1 and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        return "docker.io/" + ("/".join(parts[:-1]) or "library")
    if first in ("docker.io", "index.docker.io") and len(parts) == 2:
        return "docker.io/library"
    return "/".join(parts[:-1])


def third_party_images(repositories: Mapping[str, bool], patterns: Sequence[str] = ()) -> set[str]:
    """Of the image repositories (each with whether any of its tags ever named a commit), those
    that are third-party: no tag names a commit, and no commit-naming image comes from their
    namespace. Where no image names a commit, none is (except by `patterns`, globs on names)."""
    own = {image_namespace(r) for r, names_commit in repositories.items() if names_commit}
    found = {r for r, names_commit in repositories.items()
             if own and not names_commit and image_namespace(r) not in own}
    found |= {r for r in repositories if any(fnmatch.fnmatchcase(r, p) for p in patterns)}
    return found


def last_segment(name: str) -> str:
    """`ghcr.io/acme/payments-web` -> `payments-web`; `helm:api.image` -> `api`."""
    if name.startswith("helm:"):
        path = name.removeprefix("helm:").rsplit(".image", 1)[0]
        return path.rsplit(".", 1)[-1] if path != "image" else "image"
    return name.rstrip("/").rsplit("/", 1)[-1]


def names_service(names: Iterable[str | None], service: str) -> bool:
    """An image whose name (or repository) equals the service or ends with `/service`."""
    return any(n and (n == service or n.endswith("/" + service)) for n in names)


# -- environments -------------------------------------------------------------------------------

def order_environments(found: Iterable[str], configured: Sequence[str] = ()) -> list[str]:
    """Environments in promotion order; `configured` sets the order and drops the others."""
    if configured:
        return list(dict.fromkeys(configured))
    unique = set(found)
    return sorted(unique, key=lambda e: (_ORDER.get(e.lower(), len(_ORDER)), e))


def production_environment(
    environments: Iterable[str], configured: str | None = None
) -> str | None:
    """`gitops.production`, else `prod`, else `production`, when present (as discovery finds
    them, in any case: a `PROD` folder is production)."""
    present = sorted(set(environments))
    if configured:
        return configured
    for name in ("prod", "production"):
        found = name if name in present else next(
            (e for e in present if e.lower() == name), None)
        if found is not None:
            return found
    return None
