"""What a GitOps manifest says about images, by the contract's "where images are read". Pure.

Every YAML document of a file is read: kustomize `images:` entries, the containers of workloads
(long-running ones decide a tag; `Job`/`CronJob` ones are batch; init containers never count),
Helm values (`image.repository` + `image.tag`, or `image: repo:tag`, at the top or under one
component key; `image.registry` joined), Argo CD `Application` overrides, Argo CD Image Updater's
`.argocd-source-<app>.yaml` write-back files, and Flux `HelmRelease` values. Scalars stay text
(`0054442` is not a number) and YAML merge keys (`<<: *anchor`) are merged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

# The workload that serves a service's traffic decides its tag over one that runs beside it
# (a StatefulSet of workers, a DaemonSet agent), and both over batch (Jobs, CronJobs).
SERVING = frozenset({"Deployment", "Rollout", "DeploymentConfig"})
LONG_RUNNING = frozenset({*SERVING, "StatefulSet", "DaemonSet", "ReplicaSet"})
BATCH = frozenset({"Job", "CronJob"})
KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})

# How much an image use decides a tag, when several uses of one image in a unit disagree.
OVERRIDE, PATCH, WORKLOAD, HELM, BESIDE, BATCH_USE = (
    "override", "patch", "workload", "helm", "beside", "batch")
_WEIGHT = {OVERRIDE: 5, PATCH: 4, HELM: 3, WORKLOAD: 3, BESIDE: 2, BATCH_USE: 1}


_DOCUMENT_START = re.compile(r"(?m)^(?=---(?:[ \t]|$))")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message is the reason."""


@dataclass(frozen=True)
class ImageUse:
    """One image a manifest sets.

    `key` is its identity in its unit, stable over time: a kustomize entry's `name` (so a
    registry move through `newName` continues its history), a container's image repository,
    or a Helm value's path (`helm:image`, `helm:api.image`). `repository` is the image's full
    name without the tag (None where only a tag is given, as a Helm `image.tag` parameter).
    """

    key: str
    repository: str | None
    tag: str | None
    digest: str | None = None
    use: str = WORKLOAD

    @property
    def version(self) -> str | None:
        """What is deployed, as text: the tag, else the digest."""
        return self.tag or self.digest

    @property
    def name(self) -> str:
        """The image's name as people say it: the repository, else the key."""
        return self.repository or self.key.removeprefix("helm:")


@dataclass(frozen=True)
class ManifestFacts:
    """What one file says: its image uses and, for a kustomization, what it builds on."""

    uses: tuple[ImageUse, ...] = ()
    resources: tuple[str, ...] = ()  # kustomize resources/bases/components, as written
    kustomization: bool = False
    patches: tuple[str, ...] = ()  # kustomize patch files (strategic merge), as written


def fact_key(path: str, blob: str) -> str:
    """What a blob says depends on the name it has (a kustomization, a write-back file, other
    YAML): the key of a blob's facts under one kind of name."""
    return f"{blob}:{_kind(path.rsplit('/', 1)[-1])}"


def kind_file_name(key: str) -> str:
    """A file name of the kind a `fact_key` stands for."""
    return {"k": "kustomization.yaml", "w": ".argocd-source.yaml"}.get(key[-1], "manifest.yaml")


def _kind(file_name: str) -> str:
    if file_name in KUSTOMIZATION_FILES:
        return "k"
    return "w" if file_name.startswith(".argocd-source") else "y"


def parse_manifest(file_name: str, content: bytes) -> ManifestFacts:
    """The facts of one YAML file. Raises ManifestError when it is not readable YAML, or is a
    kustomization whose `images:` cannot be read."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError("not UTF-8 text") from None
    is_kustomization = file_name in KUSTOMIZATION_FILES
    if not is_kustomization:
        # Most YAML in a GitOps repository sets no image (CRDs, RBAC, config): a document that
        # does not even say "image" is not built, which is most of a first read's time.
        text = "".join(doc for doc in _DOCUMENT_START.split(text) if "image" in doc.lower())
    documents = _load_all(text)
    uses: list[ImageUse] = []
    resources: list[str] = []
    patches: list[str] = []
    write_back = file_name.startswith(".argocd-source")
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, Mapping):
            if is_kustomization:
                raise ManifestError("the top level is not a mapping")
            continue
        document = merged(document)
        kind = _text(document.get("kind"))
        api = _text(document.get("apiVersion")) or ""
        if is_kustomization or (kind == "Kustomization" and api.startswith("kustomize.config")):
            is_kustomization = True
            uses += _kustomize_images(document.get("images"), strict=True)
            for field in ("resources", "bases", "components"):
                resources += [r for r in _list(document.get(field)) if isinstance(r, str)]
            for patch in [*_list(document.get("patchesStrategicMerge")),
                          *_list(document.get("patches"))]:
                path = patch if isinstance(patch, str) else _get(patch, "path")
                if isinstance(path, str) and is_yaml(path):
                    patches.append(path)
        elif write_back:
            uses += _source_override(document)
        elif kind is not None and api:
            uses += _object_images(kind, api, document)
        else:
            uses += helm_values_images(document)
    return ManifestFacts(tuple(uses), tuple(resources), is_kustomization, tuple(patches))


YAML_SUFFIXES = (".yaml", ".yml")


def is_yaml(path: str) -> bool:
    return path.endswith(YAML_SUFFIXES)


def as_patch(facts: ManifestFacts) -> ManifestFacts:
    """A kustomize patch's images: a strategic-merge patch of a workload replaces its image,
    so they win over the resources' own (and lose to `images:` overrides)."""
    return ManifestFacts(uses=tuple(
        ImageUse(u.key, u.repository, u.tag, u.digest, PATCH) for u in facts.uses
        if u.use in (WORKLOAD, BESIDE, BATCH_USE)))


def _load_all(text: str) -> list[Any]:
    yaml, loader = _yaml()
    try:
        return list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ManifestError(f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ManifestError("nested too deeply") from None


@cache
def _yaml() -> tuple[Any, type]:
    """PyYAML and its loader, imported on the first manifest to parse. The base loader keeps
    every scalar as text, as kustomize reads tags; libyaml's when present (same results,
    several times faster)."""
    import yaml

    return yaml, getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def merged(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """The mapping with its `<<` merge keys applied (the base loader leaves them as keys):
    explicit keys win, then the merged mappings in their order."""
    if "<<" not in mapping:
        return dict(mapping)
    return dict(_merged(mapping, 0, {}))


def _merged(mapping: Mapping[Any, Any], depth: int,
            memo: dict[tuple[int, int], dict[Any, Any]]) -> dict[Any, Any]:
    """`merged`, each anchor merged once: the base loader keeps an alias as the very object of
    its anchor, so a few lines merging one anchor several times at each level (`<<: [*a, *a,
    *a]`) would otherwise be merged 3^depth times."""
    if "<<" not in mapping or depth > 20:
        return dict(mapping)
    done = memo.get((id(mapping), depth))
    if done is not None:
        return done
    result: dict[Any, Any] = {}
    sources = mapping["<<"]
    for source in sources if isinstance(sources, list) else [sources]:
        if isinstance(source, Mapping):
            for key, value in _merged(source, depth + 1, memo).items():
                result.setdefault(key, value)
    for key, value in mapping.items():
        if key != "<<":
            result[key] = value
    memo[(id(mapping), depth)] = result
    return result


def _get(mapping: object, *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = merged(value).get(key)
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# -- kustomize ---------------------------------------------------------------------------------

def _kustomize_images(entries: object, *, strict: bool) -> list[ImageUse]:
    if entries is None or entries == "":
        return []
    if not isinstance(entries, list):
        if strict:
            raise ManifestError("'images' is not a list")
        return []
    uses = []
    for entry in entries:
        if isinstance(entry, Mapping):
            entry = merged(entry)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            if strict:
                raise ManifestError("an 'images' entry has no 'name'")
            continue
        name = entry["name"]
        new_name = _text(entry.get("newName"))
        repository, name_tag, name_digest = split_reference(new_name or name)
        uses.append(ImageUse(
            key=name, repository=repository,
            tag=_text(entry.get("newTag")) or (name_tag if new_name else None),
            digest=_text(entry.get("digest")) or (name_digest if new_name else None),
            use=OVERRIDE))
    return uses


def _kustomize_image_strings(values: object) -> list[ImageUse]:
    """Argo CD's `kustomize.images`: `name=newName:tag`, `name:tag`, `name@digest`."""
    uses = []
    for value in _list(values):
        if not isinstance(value, str) or not value:
            continue
        name, _, new = value.partition("=")
        if not new:
            repository, tag, digest = split_reference(name)
            uses.append(ImageUse(repository, repository, tag, digest, OVERRIDE))
            continue
        repository, tag, digest = split_reference(new)
        uses.append(ImageUse(split_reference(name)[0], repository, tag, digest, OVERRIDE))
    return uses


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """`registry:5000/owner/app:1.2@sha256:ab` -> (`registry:5000/owner/app`, `1.2`,
    `sha256:ab`); a port is not a tag."""
    rest, _, digest = reference.partition("@")
    head, slash, last = rest.rpartition("/")
    name, colon, tag = last.partition(":")
    return f"{head}{slash}{name}", (tag or None) if colon else None, digest or None


# -- Kubernetes objects ------------------------------------------------------------------------

def _object_images(kind: str, api: str, document: Mapping[str, Any]) -> list[ImageUse]:
    if kind in LONG_RUNNING:
        return _containers(_get(document, "spec", "template", "spec"),
                           WORKLOAD if kind in SERVING else BESIDE)
    if kind == "Job":
        return _containers(_get(document, "spec", "template", "spec"), BATCH_USE)
    if kind == "CronJob":
        return _containers(_get(document, "spec", "jobTemplate", "spec", "template", "spec"),
                           BATCH_USE)
    if kind == "Application" and api.startswith("argoproj.io"):
        spec = _get(document, "spec")
        sources = [_get(spec, "source"), *_list(_get(spec, "sources"))]
        return [use for source in sources if isinstance(source, Mapping)
                for use in _source_override(source)]
    if kind == "HelmRelease":
        return helm_values_images(_get(document, "spec", "values"))
    if kind == "Kustomization" and api.startswith("kustomize.toolkit.fluxcd.io"):
        return _kustomize_images(_get(document, "spec", "images"), strict=False)
    return []


def _containers(pod: object, use: str) -> list[ImageUse]:
    uses = []
    for container in _list(_get(pod, "containers")):  # init containers never decide a tag
        image = _text(_get(container, "image"))
        if image:
            repository, tag, digest = split_reference(image)
            uses.append(ImageUse(repository, repository, tag, digest, use))
    return uses


# -- Argo CD and Helm --------------------------------------------------------------------------

def _source_override(source: Mapping[str, Any]) -> list[ImageUse]:
    """An Argo CD source (or an Image Updater write-back file): Helm values, the `values`
    string, `valuesObject`, then `parameters` on top; and kustomize images."""
    helm = _get(source, "helm")
    values: dict[str, Any] = {}
    text = _text(_get(helm, "values"))
    if text:
        try:
            parsed = _load_all(text)
        except ManifestError:
            parsed = []
        for document in parsed:
            if isinstance(document, Mapping):
                values = deep_merge(values, document)
    obj = _get(helm, "valuesObject")
    if isinstance(obj, Mapping):
        values = deep_merge(values, obj)
    parameters: dict[str, Any] = {}
    for parameter in _list(_get(helm, "parameters")):
        name, value = _text(_get(parameter, "name")), _get(parameter, "value")
        if name and isinstance(value, str):
            parameters = deep_merge(parameters, _nested(name.split("."), value))
    values = deep_merge(values, parameters)
    return [*helm_values_images(values),
            *_kustomize_image_strings(_get(source, "kustomize", "images"))]


def _nested(path: Sequence[str], value: str) -> dict[str, Any]:
    result: Any = value
    for key in reversed(path):
        result = {key: result}
    return dict(result)


def deep_merge(base: Mapping[Any, Any], top: Mapping[Any, Any],
               _memo: dict[tuple[int, int], tuple[object, object, dict[Any, Any]]] | None = None,
               ) -> dict[Any, Any]:
    """`top` over `base`, mappings merged key by key (as Helm merges values). Each pair of
    mappings is merged once: aliases make a few lines of YAML a tree of 3^depth mappings."""
    memo = {} if _memo is None else _memo
    done = memo.get((id(base), id(top)))
    if done is not None:
        return done[2]
    result = merged(base)
    for key, value in merged(top).items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value, memo)
        else:
            result[key] = value
    memo[(id(base), id(top))] = (base, top, result)  # the pair kept alive: ids stay theirs
    return result


def helm_values_images(values: object) -> list[ImageUse]:
    """Images in Helm values: `image` at the top, or under one component key (`api.image`).
    Deeper entries are a chart's business (sidecars, exporters), not the deployed service."""
    if not isinstance(values, Mapping):
        return []
    # A mapping other keys merge in (`<<: *defaults`) is a template, not a component: the base
    # loader keeps an alias as the very object of its anchor.
    templates = {id(source) for inner in values.values() if isinstance(inner, Mapping)
                 for source in _merge_sources(inner)}
    values = merged(values)
    uses = []
    top = _helm_image("image", values.get("image"))
    if top is not None:
        uses.append(top)
    for component, inner in values.items():
        if id(inner) in templates:
            continue
        if isinstance(component, str) and component != "image" and isinstance(inner, Mapping):
            found = _helm_image(f"{component}.image", merged(inner).get("image"))
            if found is not None:
                uses.append(found)
    return uses


def _merge_sources(mapping: Mapping[Any, Any]) -> list[Any]:
    sources = mapping.get("<<")
    return sources if isinstance(sources, list) else [sources] if sources is not None else []


def _helm_image(path: str, value: object) -> ImageUse | None:
    if isinstance(value, str) and value:
        return ImageUse(f"helm:{path}", *split_reference(value), HELM)
    if not isinstance(value, Mapping):
        return None
    value = merged(value)
    repository = _text(value.get("repository")) or _text(value.get("name"))
    registry = _text(value.get("registry"))
    tag, digest = _text(value.get("tag")), _text(value.get("digest"))
    if repository and registry and not repository.startswith(registry + "/"):
        repository = f"{registry}/{repository}"
    if repository:
        bare, name_tag, name_digest = split_reference(repository)
        repository, tag, digest = bare, tag or name_tag, digest or name_digest
    if not (tag or digest):
        return None if not repository else ImageUse(f"helm:{path}", repository, None, None, HELM)
    return ImageUse(f"helm:{path}", repository, tag, digest, HELM)


# -- a unit: the files that make one environment's manifests -----------------------------------

def combine(facts: Iterable[ManifestFacts], overrides: Iterable[ImageUse] = ()) -> tuple[
        ImageUse, ...]:
    """The images a unit deploys: its workloads' and Helm values' images, with kustomize (and
    Argo CD) overrides applied by image name, one use per key. An override that names no
    workload stands alone (its base may be remote). Where uses of one key disagree, a serving
    workload's tag (Deployment, Rollout) wins over one beside it (StatefulSet, DaemonSet), and
    both over a batch one's (Job, CronJob)."""
    plain: list[ImageUse] = []
    own_overrides: list[ImageUse] = []
    for fact in facts:
        for use in fact.uses:
            (own_overrides if use.use == OVERRIDE else plain).append(use)
    by_name = {o.key: o for o in [*own_overrides, *overrides]}  # later ones win
    chosen: dict[str, ImageUse] = {}
    for use in plain:
        override = by_name.get(use.repository or "") or by_name.get(use.key)
        if override is not None:
            use = ImageUse(override.key, override.repository or use.repository,
                           override.tag or (use.tag if not override.digest else None),
                           override.digest or (use.digest if not override.tag else None),
                           use.use)
        before = chosen.get(use.key)
        if before is None or _WEIGHT[use.use] > _WEIGHT[before.use]:
            chosen[use.key] = use
    for override in by_name.values():
        if override.key not in chosen and (override.tag or override.digest):
            chosen[override.key] = override
    return tuple(sorted(chosen.values(), key=lambda u: u.key))

