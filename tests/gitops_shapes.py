"""GitOps repositories shaped like the ones in the wild, with what devex must read from them.

Used by the tests (tests/test_gitops_shapes.py) and by bench/gitops_read.py. Each shape is a
function that writes into a GitRepo and returns its `Expected` answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.gitworld import GitRepo, image, kustomization, overlay

REG = "registry.acme.example/org"


@dataclass
class Expected:
    services: set[str]
    environments: list[str]
    deployments: dict[tuple[str, str], int]  # (service, environment) -> count
    head: dict[tuple[str, str], str]  # (service, environment) -> revision, or "v:<version>"
    config: str = ""
    notes: list[str] = field(default_factory=list)
    third_party: set[tuple[str, str]] = field(default_factory=set)  # (image, environment)
    rollbacks: dict[tuple[str, str], int] = field(default_factory=dict)  # from GitOps alone
    redeployments: dict[tuple[str, str], int] = field(default_factory=dict)


def sha_like(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(40))


def several_images(repo: GitRepo) -> Expected:
    """One overlay holding three organisation images and no image named after the path."""
    def write(api: str, worker: str, web: str) -> None:
        repo.commit("release", {overlay("shop", "prod"): kustomization([
            {"name": f"{REG}/api", "newTag": api}, {"name": f"{REG}/worker", "newTag": worker},
            {"name": f"{REG}/web", "newTag": web}])})
    write("a1b2c3d", "b1b2c3d", "c1b2c3d")
    write("a1b2c3e", "b1b2c3d", "c1b2c3d")
    write("a1b2c3e", "b1b2c3f", "c1b2c3e")
    return Expected({"api", "worker", "web"}, ["prod"],
                    {("api", "prod"): 2, ("worker", "prod"): 2, ("web", "prod"): 2},
                    {("api", "prod"): "a1b2c3e", ("worker", "prod"): "b1b2c3f",
                     ("web", "prod"): "c1b2c3e"})


def renamed_registry(repo: GitRepo) -> Expected:
    """`newName` moves to another registry while `name` stays: one service, history unbroken."""
    def write(new_name: str, tag: str) -> None:
        repo.commit("move", {overlay("billing", "qa"): kustomization([
            {"name": "billing", "newName": new_name, "newTag": tag}])})
    write("old.registry.example/billing", "1f2e3d4")
    write("ghcr.io/acme/billing", "1f2e3d4")  # same commit, new registry: no deployment
    write("ghcr.io/acme/billing", "5a6b7c8")
    return Expected({"billing"}, ["qa"], {("billing", "qa"): 2}, {("billing", "qa"): "5a6b7c8"})


def local_and_third_party(repo: GitRepo) -> Expected:
    """A `local` overlay that never changes, and third-party images beside the service's own."""
    repo.commit("local", {overlay("api", "local"): kustomization([
        {"name": f"{REG}/api", "newTag": "latest"}])})
    for tag, pg in (("9e8d7c6", "16.2"), ("9e8d7c6", "16.3"), ("8d7c6b5", "16.3")):
        repo.commit("dev", {overlay("api", "dev"): kustomization([
            {"name": "postgres", "newTag": pg}, {"name": f"{REG}/api", "newTag": tag},
            {"name": "bitnami/redis", "newTag": "7.2.4-debian-12-r9"}])})
    return Expected({"api"}, ["local", "dev"], {("api", "local"): 1, ("api", "dev"): 2},
                    {("api", "local"): "v:latest", ("api", "dev"): "8d7c6b5"},
                    third_party={("postgres", "dev"), ("bitnami/redis", "dev")})


def latest_then_sha(repo: GitRepo) -> Expected:
    """`latest` for a while (re-commits of it are not deployments), then SHA tags."""
    for tag in ("latest", "latest", "29.0", "3f4e5d6"):
        repo.commit(f"search {tag}", {overlay("search", "staging"): kustomization([
            {"name": f"{REG}/search", "newTag": tag}], extra=f"# {tag} {random.random()}\n")})
    return Expected({"search"}, ["staging"], {("search", "staging"): 3},
                    {("search", "staging"): "3f4e5d6"})


def revert_and_merges(repo: GitRepo) -> Expected:
    """A revert commit, and pull requests merged with merge commits weeks after authoring."""
    old = datetime(2026, 8, 1, tzinfo=UTC)
    repo.commit("v1", {overlay("cart", "prod"): kustomization([
        {"name": f"{REG}/cart", "newTag": "1111111a"}])})
    repo.commit("v2", {overlay("cart", "prod"): kustomization([
        {"name": f"{REG}/cart", "newTag": "2222222b"}])})
    repo.git("revert", "--no-edit", "HEAD")
    repo.checkout("pr-12", create=True)
    repo.commit("bump on a branch", {overlay("cart", "prod"): kustomization([
        {"name": f"{REG}/cart", "newTag": "3333333c"}])}, authored=old)
    repo.commit("bump again on the branch", {overlay("cart", "prod"): kustomization([
        {"name": f"{REG}/cart", "newTag": "4444444d"}])}, authored=old)
    repo.checkout("main")
    repo.merge("pr-12", "Merge pull request #12 from pr-12")
    return Expected({"cart"}, ["prod"], {("cart", "prod"): 4}, {("cart", "prod"): "4444444d"},
                    notes=["v1, v2, the revert back to v1, the merge; not the branch commits"],
                    rollbacks={("cart", "prod"): 1})


def comments_and_helm_patches(repo: GitRepo) -> Expected:
    """Commented-out image lines and a Flux HelmRelease patch inside the kustomization."""
    text = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
  - helmrelease-redis.yaml
patches:
  - target:
      kind: HelmRelease
      name: redis
    patch: |
      - op: replace
        path: /spec/chart/spec/version
        value: 17.3.2
images:
  # - name: registry.acme.example/org/mail
  #   newTag: deadbeef
  - name: registry.acme.example/org/mail
    newTag: {tag}   # promoted by CI
"""
    for tag in ("0a0b0c0d", "0e0f0a0b"):
        repo.commit("mail", {overlay("mail", "uat"): text.replace("{tag}", tag)})
    return Expected({"mail"}, ["uat"], {("mail", "uat"): 2}, {("mail", "uat"): "0e0f0a0b"})


def yaml_numbers(repo: GitRepo) -> Expected:
    """SHA tags a YAML 1.1 loader turns into numbers: `12e4567` (a float), `0054442` (octal)."""
    for tag in ("12e4567", "0054442"):
        repo.commit("tags", {overlay("auth", "qa"): kustomization([
            {"name": f"{REG}/auth", "newTag": tag}])})
    # Without an app repository, a digits-only tag is a version, not a revision.
    return Expected({"auth"}, ["qa"], {("auth", "qa"): 2}, {("auth", "qa"): "v:0054442"})


def renamed_service(repo: GitRepo) -> Expected:
    """A service renamed (path and image); `aliases` keeps its history as one."""
    repo.commit("old", {overlay("payment", "prod"): kustomization([
        {"name": f"{REG}/payment", "newTag": "7a7a7a7"}])})
    repo.commit("rename", {overlay("payment", "prod"): None,
                           overlay("payments", "prod"): kustomization([
                               {"name": f"{REG}/payments", "newTag": "7a7a7a7"}])})
    repo.commit("deploy", {overlay("payments", "prod"): kustomization([
        {"name": f"{REG}/payments", "newTag": "8b8b8b8"}])})
    return Expected({"payments"}, ["prod"], {("payments", "prod"): 2},
                    {("payments", "prod"): "8b8b8b8"},
                    config='[services.payments]\naliases = ["payment"]\n')


# -- shapes met in real repositories (docs/gitops-layouts.md) ----------------------------------
ACME = "ghcr.io/acme"


def _deployment(image_ref: str, kind: str = "Deployment", name: str = "app") -> str:
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return (f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n"
            f"  template:\n    spec:\n      initContainers:\n      - name: wait\n"
            f"        image: busybox:1.36\n      containers:\n      - name: {name}\n"
            f"        image: {image_ref}\n")


def environment_first_yml(repo: GitRepo) -> Expected:
    """`apps/<env>/<service>/kustomization.yml`: the environment above the service, `.yml`."""
    for env, tag in (("dev", "a1a1a1a"), ("prod", "a1a1a1a"), ("dev", "b2b2b2b"),
                     ("prod", "b2b2b2b")):
        repo.commit(f"orders {tag} to {env}", {f"apps/{env}/orders/kustomization.yml":
                                               kustomization([image("orders", tag)])})
    return Expected({"orders"}, ["dev", "prod"], {("orders", "dev"): 2, ("orders", "prod"): 2},
                    {("orders", "dev"): "b2b2b2b", ("orders", "prod"): "b2b2b2b"})


def plain_workloads(repo: GitRepo) -> Expected:
    """A folder of plain manifests: the Deployment, a StatefulSet and a migration Job carry one
    image with different tags; only the Deployment's counts (init containers never do)."""
    folder = "envs/prod/shop"

    def write(serving: str, beside: str, job: str) -> None:
        repo.commit("shop", {
            f"{folder}/deployment.yaml": _deployment(f"{ACME}/shop:{serving}"),
            f"{folder}/statefulset.yaml": _deployment(f"{ACME}/shop:{beside}", "StatefulSet"),
            f"{folder}/migrate-job.yaml": _deployment(f"{ACME}/shop:{job}", "Job")})
    write("c1c1c1c", "c0c0c0c", "c1c1c1c")
    write("c1c1c1c", "c2c2c2c", "c2c2c2c")  # the worker and the job move: no deployment
    write("c3c3c3c", "c2c2c2c", "c3c3c3c")
    return Expected({"shop"}, ["prod"], {("shop", "prod"): 2}, {("shop", "prod"): "c3c3c3c"})


def override_of_a_workload(repo: GitRepo) -> Expected:
    """A kustomization whose `images:` overrides the tag of a Deployment in the same folder:
    the override is what runs; editing the Deployment's own tag under it deploys nothing."""
    folder = "apps/ledger/overlays/qa"
    base = ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources:\n- deployment.yaml\nimages:\n- name: {acme}/ledger\n  newTag: {tag}\n")
    repo.commit("ledger", {f"{folder}/deployment.yaml": _deployment(f"{ACME}/ledger:0000000"),
                           f"{folder}/kustomization.yaml": base.format(acme=ACME, tag="d1d1d1d")})
    repo.commit("tidy", {f"{folder}/deployment.yaml": _deployment(f"{ACME}/ledger:1111111")})
    repo.commit("ledger", {f"{folder}/kustomization.yaml": base.format(acme=ACME, tag="d2d2d2d")})
    return Expected({"ledger"}, ["qa"], {("ledger", "qa"): 2}, {("ledger", "qa"): "d2d2d2d"})


def base_and_overlays(repo: GitRepo) -> Expected:
    """Overlays built on a base Deployment: a tag in the base deploys every overlay that does
    not override it; the base folder is no environment of its own."""
    def overlay_of(env: str, tag: str | None) -> str:
        images = f"images:\n- name: {ACME}/catalog\n  newTag: {tag}\n" if tag else ""
        return f"resources:\n- ../../base\n{images}"
    repo.commit("catalog", {
        "apps/catalog/base/deployment.yaml": _deployment(f"{ACME}/catalog:e1e1e1e"),
        "apps/catalog/base/kustomization.yaml": "resources:\n- deployment.yaml\n",
        "apps/catalog/overlays/dev/kustomization.yaml": overlay_of("dev", None),
        "apps/catalog/overlays/prod/kustomization.yaml": overlay_of("prod", "e0e0e0e")})
    repo.commit("base bump", {
        "apps/catalog/base/deployment.yaml": _deployment(f"{ACME}/catalog:e2e2e2e")})
    repo.commit("prod", {"apps/catalog/overlays/prod/kustomization.yaml":
                         overlay_of("prod", "e2e2e2e")})
    return Expected({"catalog"}, ["dev", "prod"], {("catalog", "dev"): 2, ("catalog", "prod"): 2},
                    {("catalog", "dev"): "e2e2e2e", ("catalog", "prod"): "e2e2e2e"})


def helm_values(repo: GitRepo) -> Expected:
    """A chart's `values.yaml` names the image; `values-<env>.yaml` sets each environment's tag
    (`image.tag` alone); and a folder per environment with its own `values.yaml`."""
    chart = "charts/cart"
    repo.commit("chart", {
        f"{chart}/Chart.yaml": "apiVersion: v2\nname: cart\nversion: 1.0.0\n",
        f"{chart}/values.yaml": "image:\n  registry: ghcr.io\n  repository: acme/cart\n"
                                "  tag: latest\nreplicas: 2\n",
        f"{chart}/values-dev.yaml": "image:\n  tag: f1f1f1f\n",
        f"{chart}/values-prod.yaml": "image:\n  tag: f1f1f1f\n"})
    repo.commit("dev", {f"{chart}/values-dev.yaml": "image:\n  tag: f2f2f2f\n"})
    repo.commit("uat", {"deploy/uat/cart/values.yaml":
                        f"image:\n  repository: {ACME}/cart\n  tag: \"f2f2f2f\"\n"})
    return Expected({"cart"}, ["dev", "uat", "prod"],
                    {("cart", "dev"): 2, ("cart", "uat"): 1, ("cart", "prod"): 1},
                    {("cart", "dev"): "f2f2f2f", ("cart", "uat"): "f2f2f2f",
                     ("cart", "prod"): "f1f1f1f"})


def argocd_application(repo: GitRepo) -> Expected:
    """An Argo CD `Application` whose Helm parameters set `image.tag` (the repository in its
    `values` string), one file per application in the environment's folder."""
    def app(tag: str) -> str:
        return ("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n"
                "  name: billing-prod\nspec:\n  source:\n    repoURL: https://charts.example\n"
                "    helm:\n      values: |\n        image:\n"
                f"          repository: {ACME}/billing\n      parameters:\n"
                f"      - name: image.tag\n        value: \"{tag}\"\n")
    for tag in ("9a9a9a9", "9b9b9b9"):
        repo.commit("billing", {"clusters/prod/billing-app.yaml": app(tag)})
    return Expected({"billing"}, ["prod"], {("billing", "prod"): 2},
                    {("billing", "prod"): "9b9b9b9"})


def image_updater_write_back(repo: GitRepo) -> Expected:
    """Argo CD Image Updater's `.argocd-source-<app>.yaml` beside a kustomization; the file moves
    to another folder with its tag unchanged (not a deployment), then the bot bumps it."""
    def source(tag: str) -> str:
        return f"kustomize:\n  images:\n  - {ACME}/search:{tag}\n"
    kust = "resources:\n- https://github.com/acme/search//deploy?ref=main\n"
    repo.commit("search", {"apps/search/overlays/prod/kustomization.yaml": kust,
                           "apps/search/overlays/prod/.argocd-source-search-prod.yaml":
                               source("5e5e5e5")})
    repo.commit("move", {"apps/search/overlays/prod/kustomization.yaml": None,
                         "apps/search/overlays/prod/.argocd-source-search-prod.yaml": None,
                         "apps/search/prod/kustomization.yaml": kust,
                         "apps/search/prod/.argocd-source-search-prod.yaml": source("5e5e5e5")})
    repo.commit("build: automatic update of search-prod", {
        "apps/search/prod/.argocd-source-search-prod.yaml": source("6f6f6f6")})
    return Expected({"search"}, ["prod"], {("search", "prod"): 2},
                    {("search", "prod"): "6f6f6f6"})


def flux_helmrelease_per_environment(repo: GitRepo) -> Expected:
    """Flux: a base HelmRelease and a patch file per environment (`<app>/<env>.yaml`), the image
    as `repo:tag # {"$imagepolicy": ...}` under `spec.values.<component>`; staging's patch has
    no image (it runs the base's), test's has its own."""
    folder = "apps/payments/checkout"

    def release(tag: str | None) -> str:
        values = (f"    java:\n      image: {ACME}/checkout:prod-{tag}-20260901 "
                  f"# {{\"$imagepolicy\": \"flux-system:checkout\"}}\n") if tag else \
            "    java:\n      replicas: 2\n"
        return ("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n"
                f"  name: checkout\nspec:\n  values:\n{values}")
    repo.commit("checkout", {f"{folder}/checkout.yaml": release("7a1b2c3"),
                             f"{folder}/staging.yaml": release(None),
                             f"{folder}/test.yaml": release("7a1b2c3")})
    for tag in ("7d4e5f6", "7a7b7c7"):
        repo.commit(f"{ACME}/checkout:prod-{tag}-20260901", {f"{folder}/test.yaml": release(tag)})
    repo.commit(f"{ACME}/checkout:prod-7a7b7c7-20260901", {f"{folder}/checkout.yaml":
                                                          release("7a7b7c7")})
    return Expected({"checkout"}, ["test", "staging"],
                    {("checkout", "test"): 3, ("checkout", "staging"): 2},
                    {("checkout", "test"): "7a7b7c7", ("checkout", "staging"): "7a7b7c7"})


def values_with_merge_keys(repo: GitRepo) -> Expected:
    """A values file whose component takes its image from an anchor (`<<: *defaults`) and
    overrides the tag, beside a deeper image entry (a sidecar), which is not the service's."""
    def values(tag: str) -> str:
        return (f"defaults: &defaults\n  image:\n    repository: {ACME}/ledger-api\n"
                f"    tag: 0000000\n  replicas: 1\nledger-api:\n  <<: *defaults\n"
                f"  image:\n    repository: {ACME}/ledger-api\n    tag: {tag}\n"
                f"  metrics:\n    image:\n      repository: {ACME}/statsd-exporter\n"
                f"      tag: 8c8c8c8\n")
    for tag in ("8a8a8a8", "8b8b8b8"):
        repo.commit("ledger-api", {"services/ledger-api/values-prod.yaml": values(tag)})
    return Expected({"ledger-api"}, ["prod"], {("ledger-api", "prod"): 2},
                    {("ledger-api", "prod"): "8b8b8b8"})


def registry_move_in_a_workload(repo: GitRepo) -> Expected:
    """A Deployment's image moves registry with the same tag (not a deployment), later bumped."""
    path = "k8s/staging/mailer/deployment.yaml"
    repo.commit("mailer", {path: _deployment("old.registry.example/acme/mailer:4a4a4a4")})
    repo.commit("move registry", {path: _deployment(f"{ACME}/mailer:4a4a4a4")})
    repo.commit("bump", {path: _deployment(f"{ACME}/mailer:4b4b4b4")})
    return Expected({"mailer"}, ["staging"], {("mailer", "staging"): 2},
                    {("mailer", "staging"): "4b4b4b4"})


def rename_of_the_only_image(repo: GitRepo) -> Expected:
    """The overlay's only image is renamed: still its folder's service (rule 1), one history."""
    repo.commit("notify", {overlay("notify", "qa"): kustomization([
        {"name": f"{ACME}/notifier", "newTag": "3a3a3a3"}])})
    repo.commit("rename", {overlay("notify", "qa"): kustomization([
        {"name": f"{ACME}/notifications", "newTag": "3a3a3a3"}])})
    repo.commit("bump", {overlay("notify", "qa"): kustomization([
        {"name": f"{ACME}/notifications", "newTag": "3b3b3b3"}])})
    return Expected({"notify"}, ["qa"], {("notify", "qa"): 2}, {("notify", "qa"): "3b3b3b3"})


def two_own_images_and_third_party(repo: GitRepo) -> Expected:
    """Two own images in one folder (neither named after it: each a service by its name), with
    redis and keycloak beside them (third-party: never a commit, from other namespaces)."""
    def write(api: str, web: str, keycloak: str) -> None:
        repo.commit("portal", {overlay("portal", "prod"): kustomization([
            {"name": f"{ACME}/portal-api", "newTag": api},
            {"name": f"{ACME}/portal-web", "newTag": web},
            {"name": "redis", "newTag": "7.2.4"},
            {"name": "quay.io/keycloak/keycloak", "newTag": keycloak}])})
    write("2a2a2a2", "2b2b2b2", "24.0.1")
    write("2a2a2a2", "2c2c2c2", "25.0.0")  # keycloak's upgrade is nobody's deployment
    return Expected({"portal-api", "portal-web"}, ["prod"],
                    {("portal-api", "prod"): 1, ("portal-web", "prod"): 2},
                    {("portal-api", "prod"): "2a2a2a2", ("portal-web", "prod"): "2c2c2c2"},
                    third_party={("redis", "prod"), ("quay.io/keycloak/keycloak", "prod")})


def rebuilds(repo: GitRepo) -> Expected:
    """Re-tags of one commit (a build number bumped, a short SHA then the full one): counted
    apart as redeployments, not deployments."""
    full = "5c5c5c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"
    for tag in ("1.0.0-5c5c5c5-41", "1.0.0-5c5c5c5-42", "5c5c5c5", full):
        repo.commit(f"gateway {tag}", {overlay("gateway", "prod"): kustomization([
            image("gateway", tag)])})
    return Expected({"gateway"}, ["prod"], {("gateway", "prod"): 1},
                    {("gateway", "prod"): full}, redeployments={("gateway", "prod"): 3})


def tags_put_back(repo: GitRepo) -> Expected:
    """A tag put back by hand (A, B, A: a rollback), then put forward again (A, B, A, B: not a
    second one); in another environment A, B, A, B, C."""
    a, b, c = "1d1d1d1", "2e2e2e2", "3f3f3f3"
    for env, tags in (("qa", (a, b, a)), ("prod", (a, b, a, b, c))):
        for tag in tags:
            repo.commit(f"profile {tag} to {env}", {overlay("profile", env): kustomization([
                image("profile", tag)])})
    return Expected({"profile"}, ["qa", "prod"], {("profile", "qa"): 3, ("profile", "prod"): 5},
                    {("profile", "qa"): a, ("profile", "prod"): c},
                    rollbacks={("profile", "qa"): 1, ("profile", "prod"): 1})


def strategic_merge_patches(repo: GitRepo) -> Expected:
    """Environment folders with no service folder: a `version.yml` strategic-merge patch sets the
    image of a base Deployment (the service is named by its image)."""
    def env_files(env: str, tag: str) -> dict[str, str]:
        return {f"envs/{env}/kustomization.yml": "resources:\n- ../../base\n"
                                                 "patchesStrategicMerge:\n- version.yml\n",
                f"envs/{env}/version.yml": _deployment(f"docker.io/acme/simple-app:{tag}")}
    repo.commit("base", {"base/deployment.yml": _deployment("docker.io/acme/simple-app:0a0a0a0"),
                         "base/kustomization.yml": "resources:\n- deployment.yml\n",
                         **env_files("qa", "1b1b1b1"), **env_files("prod", "1b1b1b1")})
    repo.commit("qa", env_files("qa", "2c2c2c2"))
    return Expected({"simple-app"}, ["qa", "prod"],
                    {("simple-app", "qa"): 2, ("simple-app", "prod"): 1},
                    {("simple-app", "qa"): "2c2c2c2", ("simple-app", "prod"): "1b1b1b1"})


SHAPES: dict[str, Callable[[GitRepo], Expected]] = {
    "several_images": several_images,
    "renamed_registry": renamed_registry,
    "local_and_third_party": local_and_third_party,
    "latest_then_sha": latest_then_sha,
    "revert_and_merges": revert_and_merges,
    "comments_and_helm_patches": comments_and_helm_patches,
    "yaml_numbers": yaml_numbers,
    "renamed_service": renamed_service,
    "environment_first_yml": environment_first_yml,
    "plain_workloads": plain_workloads,
    "override_of_a_workload": override_of_a_workload,
    "base_and_overlays": base_and_overlays,
    "helm_values": helm_values,
    "argocd_application": argocd_application,
    "image_updater_write_back": image_updater_write_back,
    "flux_helmrelease_per_environment": flux_helmrelease_per_environment,
    "values_with_merge_keys": values_with_merge_keys,
    "registry_move_in_a_workload": registry_move_in_a_workload,
    "rename_of_the_only_image": rename_of_the_only_image,
    "two_own_images_and_third_party": two_own_images_and_third_party,
    "rebuilds": rebuilds,
    "tags_put_back": tags_put_back,
    "strategic_merge_patches": strategic_merge_patches,
}


def synthetic_history(path: Path, *, services: int = 20, environments: tuple[str, ...] = (
        "dev", "qa", "prod"), commits: int = 1300, days: int = 730, seed: int = 1) -> GitRepo:
    """A large, realistic GitOps history written with `git fast-import` (one process): a third of
    the services as kustomize overlays, a third as plain Deployment manifests (with a migration
    Job beside), a third as Helm values per environment over a shared `values.yaml`."""
    import subprocess

    rng = random.Random(seed)
    repo = GitRepo(path)
    start = datetime(2024, 11, 1, tzinfo=UTC)
    stream = []
    names = [f"svc-{n:02d}" for n in range(services)]

    def files(n: int, name: str, env: str, tag: str) -> dict[str, str]:
        shape = names.index(name) % 3
        if shape == 0:
            images = [{"name": f"{REG}/{name}", "newTag": tag}]
            if rng.random() < 0.3:
                images.append({"name": "docker.io/library/redis", "newTag": "7.2"})
            return {overlay(name, env): kustomization(images)}
        if shape == 1:
            folder = f"envs/{env}/{name}"
            return {f"{folder}/deployment.yaml": _deployment(f"{REG}/{name}:{tag}", name=name),
                    f"{folder}/migrate.yaml": _deployment(f"{REG}/{name}:{tag}", "Job")}
        chart = f"charts/{name}"
        shared = f"image:\n  repository: {REG}/{name}\n  tag: latest\nreplicas: 2\n"
        return {f"{chart}/values.yaml": shared,
                f"{chart}/values-{env}.yaml": f"image:\n  tag: \"{tag}\"\n"}

    for n in range(commits):
        when = start + timedelta(seconds=int(days * 86400 * n / commits))
        name, env = rng.choice(names), rng.choice(environments)
        message = f"Deploy {name} to {env}".encode()
        stamp = int(when.timestamp())
        body = b""
        for file, text in files(n, name, env, f"1.{n}.0-{sha_like(rng)[:8]}").items():
            data = text.encode()
            body += f"M 100644 inline {file}\ndata {len(data)}\n".encode() + data + b"\n"
        stream.append(b"commit refs/heads/main\n" + f"mark :{n + 1}\n".encode()
                      + f"committer Bot <bot@acme.example> {stamp} +0000\n".encode()
                      + f"data {len(message)}\n".encode() + message + b"\n" + body)
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input=b"".join(stream),
                   check=True, capture_output=True)
    return repo
