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

from tests.gitworld import GitRepo, kustomization, overlay

REG = "registry.acme.example/org"


@dataclass
class Expected:
    services: set[str]
    environments: list[str]
    deployments: dict[tuple[str, str], int]  # (service, environment) -> count
    head: dict[tuple[str, str], str]  # (service, environment) -> revision, or "v:<version>"
    config: str = ""
    notes: list[str] = field(default_factory=list)


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
                    {("api", "local"): "v:latest", ("api", "dev"): "8d7c6b5"})


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
                    notes=["v1, v2, the revert back to v1, the merge; not the branch commits"])


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


SHAPES: dict[str, Callable[[GitRepo], Expected]] = {
    "several_images": several_images,
    "renamed_registry": renamed_registry,
    "local_and_third_party": local_and_third_party,
    "latest_then_sha": latest_then_sha,
    "revert_and_merges": revert_and_merges,
    "comments_and_helm_patches": comments_and_helm_patches,
    "yaml_numbers": yaml_numbers,
    "renamed_service": renamed_service,
}


def synthetic_history(path: Path, *, services: int = 20, environments: tuple[str, ...] = (
        "dev", "qa", "prod"), commits: int = 1300, days: int = 730, seed: int = 1) -> GitRepo:
    """A large, realistic GitOps history written with `git fast-import` (one process)."""
    import subprocess

    rng = random.Random(seed)
    repo = GitRepo(path)
    start = datetime(2024, 11, 1, tzinfo=UTC)
    stream = []
    names = [f"svc-{n:02d}" for n in range(services)]
    for n in range(commits):
        when = start + timedelta(seconds=int(days * 86400 * n / commits))
        name, env = rng.choice(names), rng.choice(environments)
        images = [{"name": f"{REG}/{name}", "newTag": f"1.{n}.0-{sha_like(rng)[:8]}"}]
        if rng.random() < 0.3:
            images.append({"name": "docker.io/library/redis", "newTag": "7.2"})
        body = kustomization(images).encode()
        message = f"Deploy {name} to {env}".encode()
        stamp = int(when.timestamp())
        stream.append(b"commit refs/heads/main\n" + f"mark :{n + 1}\n".encode()
                      + f"committer Bot <bot@acme.example> {stamp} +0000\n".encode()
                      + f"data {len(message)}\n".encode() + message + b"\n"
                      + f"M 100644 inline {overlay(name, env)}\ndata {len(body)}\n".encode()
                      + body + b"\n")
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input=b"".join(stream),
                   check=True, capture_output=True)
    return repo
