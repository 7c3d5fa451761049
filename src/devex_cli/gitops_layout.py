"""The contract's "GitOps layout" rules as pure functions: templates, manifests, image choice,
revisions in tags and the promotion order of environments. No I/O."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

_HEX_RUN = re.compile(r"(?<![A-Za-z0-9])[0-9a-fA-F]{7,40}(?![A-Za-z0-9])")
_PLACEHOLDER = re.compile(r"\{(service|environment)\}")


class ManifestError(ValueError):
    """A manifest that cannot be read as a kustomization; the message is the reason."""


@dataclass(frozen=True)
class ManifestTemplate:
    """A path template such as `apps/{service}/overlays/{environment}/kustomization.yaml`."""

    template: str
    service: str | None = None  # the service a `services.<name>.manifest` template belongs to

    @property
    def pathspec(self) -> str:
        return ":(glob)" + _PLACEHOLDER.sub("*", self.template)

    def match(self, path: str) -> tuple[str, str] | None:
        """(service, environment) for a path the template matches, else None."""
        found = self._regex.fullmatch(path)
        if not found:
            return None
        groups = found.groupdict()
        service = groups.get("service") or self.service
        environment = groups.get("environment")
        if not service or not environment:
            return None
        return service, environment

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        pattern, pos, seen = "", 0, set()
        for found in _PLACEHOLDER.finditer(self.template):
            pattern += re.escape(self.template[pos : found.start()])
            name = found.group(1)
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)"
            seen.add(name)
            pos = found.end()
        return re.compile(pattern + re.escape(self.template[pos:]))


@dataclass(frozen=True)
class Image:
    """One entry of a kustomization's `images:` list, all values as text."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None

    @property
    def tag(self) -> str | None:
        """`newTag`, else the tag part of `newName` (`registry/app:tag`)."""
        if self.new_tag:
            return self.new_tag
        if self.new_name:
            last = self.new_name.rsplit("/", 1)[-1]
            if ":" in last:
                return last.split(":", 1)[1] or None
        return None

    def is_named(self, reference: str) -> bool:
        """True when `name` or `newName` equals the reference or ends with `/reference`."""
        for value in (self.name, _without_tag(self.new_name)):
            if value and (value == reference or value.endswith("/" + reference)):
                return True
        return False


def _without_tag(name: str | None) -> str | None:
    if not name:
        return name
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def parse_kustomization(content: bytes) -> tuple[Image, ...]:
    """The `images:` of a kustomization, scalars kept as text (`0054442` stays `0054442`).

    Raises ManifestError with the reason when the content is not a readable kustomization.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError("not UTF-8 text") from None
    yaml, loader = _yaml()
    try:
        documents = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ManifestError(f"invalid YAML{where}: {problem}") from None
    if not documents:
        return ()
    document = documents[0]
    if not isinstance(document, Mapping):
        raise ManifestError("the top level is not a mapping")
    entries = document.get("images")
    if entries is None or entries == "":
        return ()
    if not isinstance(entries, list):
        raise ManifestError("'images' is not a list")
    images = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ManifestError("an 'images' entry has no 'name'")
        images.append(Image(
            name=entry["name"],
            new_name=_text(entry.get("newName")),
            new_tag=_text(entry.get("newTag")),
            digest=_text(entry.get("digest")),
        ))
    return tuple(images)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


@cache
def _yaml() -> tuple[Any, type]:
    """PyYAML and its loader, imported on the first manifest to parse (a run that finds every
    manifest in the cache never needs it). libyaml's loader when present: same results, several
    times faster."""
    import yaml

    return yaml, getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def revision_in_tag(tag: str | None) -> str | None:
    """The first stand-alone run of 7-40 hex digits in a tag, lower-cased, else None.

    `58ddfd6`, a full SHA, `1.4.2-58ddfd6a`, `sha-58ddfd6` give one; `v20241105x`, `latest` and
    `29.0` do not. A run of digits only is returned too: callers keep it only where the app
    repository has that commit (see `is_digits_only`).
    """
    if not tag:
        return None
    found = _HEX_RUN.search(tag)
    return found.group(0).lower() if found else None


def is_digits_only(revision: str) -> bool:
    return revision.isdigit()


@dataclass(frozen=True)
class PathRule:
    """How the images of one manifest path map to services, decided over its whole history."""

    services: Mapping[str, str]  # image name -> service; "*" = the path's own service by match

    def service_of(self, image: Image, path_service: str) -> str | None:
        if "*" in self.services:
            return path_service if image.is_named(self.services["*"]) else None
        return self.services.get(image.name)


def choose_path_rule(
    path_service: str | None,
    images_over_history: Iterable[Image],
    *,
    pinned_image: str | None = None,
) -> PathRule:
    """Which `images:` entries of a path are services (the contract's rule, in its order).

    1. `services.<name>.image` pins the path's service to an entry;
    2. the entry whose name or newName is the service (or ends with /service);
    3. the only image name the path ever held;
    4. otherwise each image name is a service of its own, named by its last path segment.
    """
    images = list(images_over_history)
    names = list(dict.fromkeys(i.name for i in images))
    if path_service:
        if pinned_image:
            return PathRule({"*": pinned_image})
        if any(i.is_named(path_service) for i in images):
            return PathRule({"*": path_service})
        if len(names) == 1:
            return PathRule({names[0]: path_service})
    short = {name: name.rsplit("/", 1)[-1] for name in names}
    clashes = {s for s, count in Counter(short.values()).items() if count > 1}
    return PathRule({name: (name if short[name] in clashes else short[name]) for name in names})


# Promotion order of the usual environment names; unknown names come after, alphabetically.
_ORDER = {
    name: rank
    for rank, names in enumerate([
        ("local",), ("dev", "development"), ("test", "testing"), ("qa",), ("uat",),
        ("staging", "stage"), ("preprod", "pre-prod"), ("prod", "production"),
    ])
    for name in names
}


def order_environments(found: Iterable[str], configured: Sequence[str] = ()) -> list[str]:
    """Environments in promotion order; `configured` sets the order and drops the others."""
    if configured:
        return list(dict.fromkeys(configured))
    unique = set(found)
    return sorted(unique, key=lambda e: (_ORDER.get(e.lower(), len(_ORDER)), e))


def production_environment(
    environments: Iterable[str], configured: str | None = None
) -> str | None:
    """`gitops.production`, else `prod`, else `production`, when present."""
    present = set(environments)
    if configured:
        return configured
    for name in ("prod", "production"):
        if name in present:
            return name
    return None
