from __future__ import annotations

from pathlib import Path

import pytest

from devex_cli.config import load_settings
from devex_cli.errors import ConfigError
from devex_cli.gitops_layout import (
    Location,
    ManifestTemplate,
    order_environments,
    revision_in_tag,
)
from devex_cli.manifests import OVERRIDE, ImageUse, ManifestError, parse_manifest
from devex_cli.sources.gitops import GitOpsHistory, read_history
from tests.gitworld import GitRepo, image, kustomization, overlay

SHA_A = "58ddfd6a1b2c3d4e5f60718293a4b5c6d7e8f901"
SHA_B = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"


def history(repo: GitRepo, tmp_path: Path, config: str = "", **kw: object) -> GitOpsHistory:
    path = tmp_path / "devex-test.toml"
    path.write_text(config)
    return read_history(repo.path, load_settings(path, environ={}), **kw)  # type: ignore[arg-type]


@pytest.fixture
def gitops(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "gitops")


@pytest.mark.parametrize(("tag", "revision"), [
    ("58ddfd6", "58ddfd6"),
    (SHA_A, SHA_A),
    ("1.4.2-58ddfd6a", "58ddfd6a"),
    ("sha-58DDFD6", "58ddfd6"),
    ("main-58ddfd6-build12", "58ddfd6"),
    ("v20241105x", None),
    ("latest", None),
    ("29.0", None),
    ("3.11.0-debian", None),
    ("abcdef", None),
    (None, None),
])
def test_revision_in_tag(tag: str | None, revision: str | None) -> None:
    assert revision_in_tag(tag) == revision


def test_tags_stay_text() -> None:
    facts = parse_manifest("kustomization.yaml", b"images:\n- name: app\n  newTag: 0054442\n"
                           b"- name: other\n  newTag: 12e4567\n- name: x\n  newTag: 1.10\n")
    assert [i.tag for i in facts.uses] == ["0054442", "12e4567", "1.10"]


def test_tag_in_new_name_and_commented_lines() -> None:
    facts = parse_manifest(
        "kustomization.yaml",
        b"images:\n# - name: old\n#   newTag: deadbeef1\n"
        b"- name: app\n  newName: reg.example:5000/team/app:1.2-58ddfd6 # pinned\n")
    assert facts.uses == (ImageUse("app", "reg.example:5000/team/app", "1.2-58ddfd6", None,
                                   OVERRIDE),)


@pytest.mark.parametrize("content", [b"images: [\n", b"- a\n- b\n", b"images: {a: 1}\n",
                                     b"images:\n- newTag: x\n", b"\xff\xfe"])
def test_unreadable_manifests(content: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest("kustomization.yaml", content)


def test_template_matching() -> None:
    template = ManifestTemplate("apps/{service}/overlays/{environment}/kustomization.yaml")
    assert template.match("apps/pay/overlays/qa/kustomization.yaml", "prod") == Location(
        "apps/pay/overlays/qa", "qa", "pay")
    assert template.match("apps/pay/base/kustomization.yaml", "prod") is None
    assert template.pathspec == ":(glob)apps/*/overlays/*/kustomization.yaml"
    own = ManifestTemplate("envs/{environment}/payments.yaml", service="payments")
    assert own.match("envs/prod/payments.yaml", "prod") == Location(
        "envs/prod/payments.yaml", "prod", "payments", True)
    folder = ManifestTemplate("deploy/*/{service}/")
    assert folder.match("deploy/eu/cart/deployment.yml", "production") == Location(
        "deploy/eu/cart", "production", "cart")
    assert folder.pathspec == ":(glob)deploy/*/*/*"


def test_environment_order() -> None:
    assert order_environments(["prod", "zeta", "qa", "dev", "alpha", "staging", "local"]) == [
        "local", "dev", "qa", "staging", "prod", "alpha", "zeta"]
    assert order_environments(["prod", "qa"], ["qa", "prod"]) == ["qa", "prod"]


def test_deployments_are_revision_changes(gitops: GitRepo, tmp_path: Path) -> None:
    first = gitops.commit("deploy pay to qa", {overlay("pay", "qa"): kustomization(
        [image("pay", "58ddfd6")])})
    gitops.commit("only a comment", {overlay("pay", "qa"): kustomization(
        [image("pay", "58ddfd6")], extra="# note\n")})
    gitops.commit("rebuild: same commit, new tag", {overlay("pay", "qa"): kustomization(
        [image("pay", "1.0.1-58ddfd6")])})
    second = gitops.commit("deploy pay", {overlay("pay", "qa"): kustomization(
        [image("pay", "0a1b2c3")])})
    result = history(gitops, tmp_path)
    assert [(d.service, d.environment, d.release.revision, d.gitops_commit)
            for d in result.deployments] == [
        ("pay", "qa", "58ddfd6", first), ("pay", "qa", "0a1b2c3", second)]
    assert result.deployments[0].previous is None
    assert result.deployments[1].previous is not None
    state = result.state("pay", "qa")
    assert state is not None and state.gitops_commit == second
    assert result.services == ("pay",)


def test_several_images_one_named_after_the_service(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([
        {"name": "docker.io/library/redis", "newTag": "7.2"},
        image("pay", "58ddfd6"),
        {"name": "envoyproxy/envoy", "newTag": "v1.29.0"}])})
    gitops.commit("bump redis only", {overlay("pay", "qa"): kustomization([
        {"name": "docker.io/library/redis", "newTag": "7.4"},
        image("pay", "58ddfd6"),
        {"name": "envoyproxy/envoy", "newTag": "v1.29.0"}])})
    result = history(gitops, tmp_path)
    assert [d.service for d in result.deployments] == ["pay"]


def test_several_images_none_named_each_is_a_service(gitops: GitRepo, tmp_path: Path) -> None:
    path = "overlays/{environment}/kustomization.yaml"
    gitops.commit("stack", {"overlays/dev/kustomization.yaml": kustomization([
        {"name": "ghcr.io/org/web", "newTag": "58ddfd6"},
        {"name": "ghcr.io/org/worker", "newName": "ghcr.io/org/worker-v1", "newTag": "0a1b2c3"},
        {"name": "postgres", "newTag": "16.2"}])})
    gitops.commit("rename worker image", {"overlays/dev/kustomization.yaml": kustomization([
        {"name": "ghcr.io/org/web", "newTag": "58ddfd6"},
        {"name": "ghcr.io/org/worker", "newName": "ghcr.io/org/worker-v2", "newTag": "0a1b2c3"},
        {"name": "postgres", "newTag": "16.3"}])})
    result = history(gitops, tmp_path, f"[services.stack]\nmanifest = '{path}'\n")
    # each own image a service named by its `name` (not the registry path newName moved it
    # to); postgres, never a commit and from another namespace, is third-party
    assert result.services == ("web", "worker")
    assert [(d.service, d.release.version) for d in result.deployments] == [
        ("web", "58ddfd6"), ("worker", "0a1b2c3")]
    assert [(t.image, t.version) for t in result.third_party] == [("postgres", "16.3")]


def test_pinned_image(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([
        {"name": "ghcr.io/org/payments-api", "newTag": "58ddfd6"},
        {"name": "ghcr.io/org/payments-migrations", "newTag": "0a1b2c3"}])})
    result = history(gitops, tmp_path, "[services.pay]\nimage = 'ghcr.io/org/payments-api'\n")
    state = result.state("pay", "qa")
    assert state is not None and state.release.revision == "58ddfd6"


def test_version_only_tags_are_deployments_without_revision(
    gitops: GitRepo, tmp_path: Path
) -> None:
    gitops.commit("a", {overlay("pay", "prod"): kustomization([image("pay", "latest")])})
    gitops.commit("b", {overlay("pay", "prod"): kustomization([image("pay", "29.0")])})
    gitops.commit("c", {overlay("pay", "prod"): kustomization([image("pay", "20241105")])})
    result = history(gitops, tmp_path)
    assert [(d.release.version, d.release.revision) for d in result.deployments] == [
        ("latest", None), ("29.0", None), ("20241105", None)]
    with_app = history(gitops, tmp_path, has_commit=lambda pairs: [
        (svc, sha) for svc, sha in pairs if sha == "20241105"])
    assert with_app.deployments[-1].release.revision == "20241105"


def test_the_digits_only_check_hears_the_deployed_revisions_first(
    gitops: GitRepo, tmp_path: Path
) -> None:
    """Before digits-only tags are judged, `met` hears every revision the read deploys, newest
    first (a source that lists a history can answer the tags from the listing the change sets
    need): not a third-party image's, and not without a digits-only tag to judge."""
    heard: list[list[tuple[str, str]]] = []
    asked: list[list[tuple[str, str]]] = []

    def has_commit(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        asked.append(list(pairs))
        return [pair for pair in pairs if pair[1] == "2024110"]

    gitops.commit("a", {overlay("pay", "prod"): kustomization([image("pay", "58ddfd6")])})
    plain = history(gitops, tmp_path, "[gitops]\nthird_party = ['docker.io/library/*']\n",
                    has_commit=has_commit, met=heard.append)
    assert plain.deployments and heard == [] and asked == []
    gitops.commit("b", {overlay("pay", "prod"): kustomization([
        image("pay", "2024110"), {"name": "docker.io/library/postgres", "newTag": "16.3-deadbee"}])})
    gitops.commit("c", {overlay("pay", "prod"): kustomization([
        image("pay", "0a1b2c3"), {"name": "docker.io/library/postgres", "newTag": "16.3-deadbee"}])})
    result = history(gitops, tmp_path, "[gitops]\nthird_party = ['docker.io/library/*']\n",
                     has_commit=has_commit, met=heard.append)
    assert heard == [[("pay", "0a1b2c3"), ("pay", "2024110")]]
    assert asked == [[("pay", "2024110")]]
    assert [d.release.revision for d in result.deployments] == ["58ddfd6", "2024110", "0a1b2c3"]


def test_merge_commit_is_the_deployment(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])})
    gitops.checkout("promote", create=True)
    gitops.commit("bump on a branch", {overlay("pay", "qa"): kustomization(
        [image("pay", "0a1b2c3")])})
    gitops.commit("unrelated", {"README.md": "hi\n"})
    gitops.checkout("main")
    gitops.commit("other work", {"docs.md": "x\n"})
    merge = gitops.merge("promote", "Merge pull request #7")
    result = history(gitops, tmp_path)
    assert [d.gitops_commit for d in result.deployments][-1] == merge
    assert len(result.deployments) == 2


def test_broken_manifest_is_skipped_then_fixed(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("ok", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])})
    broken = [gitops.commit(f"broken {n}", {overlay("pay", "qa"): "images: [\n" + "x" * n})
              for n in range(3)]
    mid = history(gitops, tmp_path)
    assert [s.commit for s in mid.skipped] == broken
    assert [p.commit for p in mid.broken_at_head] == [broken[-1]]
    fixed = gitops.commit("fixed", {overlay("pay", "qa"): kustomization([image("pay", "0a1b2c3")])})
    result = history(gitops, tmp_path)
    assert result.broken_at_head == ()
    assert [d.gitops_commit for d in result.deployments][-1] == fixed
    assert len(result.deployments) == 2


def test_renamed_service_continues_through_aliases(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("old", {overlay("payment", "qa"): kustomization([image("payment", "58ddfd6")])})
    gitops.commit("rename", {overlay("payment", "qa"): None,
                             overlay("payments", "qa"): kustomization([
                                 image("payments", "58ddfd6")])})
    gitops.commit("deploy", {overlay("payments", "qa"): kustomization([
        image("payments", "0a1b2c3")])})
    result = history(gitops, tmp_path, "[services.payments]\naliases = ['payment']\n")
    assert result.services == ("payments",)
    assert [d.release.revision for d in result.deployments] == ["58ddfd6", "0a1b2c3"]
    state = result.state("payments", "qa")
    assert state is not None and state.manifest == overlay("payments", "qa")


def test_removed_overlay_leaves_the_environment(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")]),
                         overlay("pay", "dev"): kustomization([image("pay", "58ddfd6")])})
    gitops.commit("drop qa", {overlay("pay", "qa"): None})
    result = history(gitops, tmp_path)
    assert result.state("pay", "qa") is None
    assert result.state("pay", "dev") is not None
    assert result.environments == ("dev", "qa")


def test_committer_time_not_author_time(gitops: GitRepo, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    gitops.commit("late merge", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])},
                  when=when, authored=datetime(2026, 9, 1, tzinfo=UTC))
    assert history(gitops, tmp_path).deployments[0].time == when


def test_environments_setting_drops_others(gitops: GitRepo, tmp_path: Path) -> None:
    gitops.commit("x", {overlay("pay", "local"): kustomization([image("pay", "latest")]),
                        overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])})
    result = history(gitops, tmp_path, "[gitops]\nenvironments = ['qa']\n")
    assert result.environments == ("qa",)
    assert [d.environment for d in result.deployments] == ["qa"]


def test_history_all_reads_commits_a_pull_merge_put_on_second_parents(
        gitops: GitRepo, tmp_path: Path) -> None:
    """A teammate's `git pull` merges the branch into their local work: the branch's own
    commit (web's deployment) lands on the merge's second parent. First-parent reading dates it
    by the merge; `gitops.history = "all"` by its own commit."""
    from datetime import UTC, datetime

    day = datetime(2026, 9, 1, tzinfo=UTC)
    gitops.commit("pay", {overlay("pay", "prod"): kustomization([image("pay", "1a1a1a1")])},
                  when=day)
    base = gitops.sha()
    gitops.checkout("upstream", create=True)
    web = gitops.commit("web", {overlay("web", "prod"): kustomization([image("web", "2b2b2b2")])},
                        when=day.replace(hour=10))
    gitops.checkout("main")
    gitops.git("reset", "-q", "--hard", base)
    gitops.commit("pay again", {overlay("pay", "prod"): kustomization([image("pay", "3c3c3c3")])},
                  when=day.replace(hour=11))
    merge = gitops.merge("upstream", "Merge branch 'main' of origin", when=day.replace(hour=12))
    chain = history(gitops, tmp_path)
    every = history(gitops, tmp_path, '[gitops]\nhistory = "all"\n')
    chain_web = next(d for d in chain.deployments if d.service == "web")
    every_web = next(d for d in every.deployments if d.service == "web")
    assert (chain_web.gitops_commit, chain_web.time.hour) == (merge, 12)
    assert (every_web.gitops_commit, every_web.time.hour) == (web, 10)
    assert [d.release.revision for d in every.deployments if d.service == "pay"] == [
        "1a1a1a1", "3c3c3c3"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[gitops]\nhistory = "some"\n')
    with pytest.raises(ConfigError, match=r"gitops\.history must be"):
        load_settings(bad, environ={})


# -- review findings -----------------------------------------------------------------------------

def _workload(image_ref: str) -> str:
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n"
            f"    spec:\n      containers:\n      - name: app\n        image: {image_ref}\n")


def _kustomize(resources: list[str], tag: str, patches: tuple[str, ...] = ()) -> str:
    text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    text += "".join(f"- {r}\n" for r in resources)
    if patches:
        text += "patches:\n" + "".join(f"- path: {p}\n" for p in patches)
    return text + f"images:\n- name: ghcr.io/acme/pay\n  newTag: {tag}\n"


@pytest.mark.parametrize(("resources", "patches", "file"), [
    (["resources/deployment.yaml"], (), "apps/pay/overlays/prod/resources/deployment.yaml"),
    (["../../base"], ("prod.yaml",), "apps/pay/overlays/prod/prod.yaml"),
])
def test_a_file_an_overlay_builds_on_is_not_an_environment_of_its_own(
        gitops: GitRepo, tmp_path: Path, resources: list[str], patches: tuple[str, ...],
        file: str) -> None:
    """A resource in a subfolder of the overlay, or a patch named after the environment, only
    serves the overlay's build: a bump of its tag under the overlay's `images:` deploys nothing
    (it was a deployment of the overridden tag, from a second 'unit' of pay in prod)."""
    overlay_file = "apps/pay/overlays/prod/kustomization.yaml"
    gitops.commit("one", {overlay_file: _kustomize(resources, "aaaaaaa", patches),
                          "apps/pay/base/kustomization.yaml": "resources:\n- deployment.yaml\n",
                          "apps/pay/base/deployment.yaml": _workload("ghcr.io/acme/pay:1111111"),
                          file: _workload("ghcr.io/acme/pay:1111111")})
    gitops.commit("two", {overlay_file: _kustomize(resources, "bbbbbbb", patches)})
    gitops.commit("bump the overridden tag", {file: _workload("ghcr.io/acme/pay:2222222")})
    result = history(gitops, tmp_path)
    assert [d.release.version for d in result.deployments] == ["aaaaaaa", "bbbbbbb"]
    state = result.state("pay", "prod")
    assert state is not None and state.release.version == "bbbbbbb"
    assert state.manifest == overlay_file


def test_a_chart_values_file_removed_does_not_rename_the_service(
        gitops: GitRepo, tmp_path: Path) -> None:
    """`helm/values-ENV.yaml` files setting only `image.tag` take the repository from the
    `values.yaml` beside them; once that file is gone (the chart moved to a chart registry),
    the service stays named by the image it had, not 'image' (the value path)."""
    gitops.commit("chart", {
        "helm/values.yaml": "image:\n  repository: ghcr.io/acme/pay\n  tag: 1111111\n",
        "helm/values-dev.yaml": "image:\n  tag: ccccccc\n"})
    gitops.commit("chart moved out", {"helm/values.yaml": None})
    gitops.commit("deploy", {"helm/values-dev.yaml": "image:\n  tag: ddddddd\n"})
    result = history(gitops, tmp_path)
    assert result.services == ("pay",)
    assert [(d.service, d.release.version) for d in result.deployments] == [
        ("pay", "ccccccc"), ("pay", "ddddddd")]


def test_a_path_added_back_continues_the_same_history(gitops: GitRepo, tmp_path: Path) -> None:
    """Removed, then added back: a deployment whose previous release is the one the service ran
    before the removal (its change set and lead time are known), not a first deployment."""
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])})
    gitops.commit("drop qa", {overlay("pay", "qa"): None})
    gitops.commit("qa again", {overlay("pay", "qa"): kustomization([image("pay", "0a1b2c3")])})
    result = history(gitops, tmp_path)
    assert [(d.release.revision, d.previous.revision if d.previous else None)
            for d in result.deployments] == [("58ddfd6", None), ("0a1b2c3", "58ddfd6")]


def test_shared_values_added_beside_an_environment_file_are_read_when_added(
        gitops: GitRepo, tmp_path: Path) -> None:
    """A `values.yaml` added beside `values-prod.yaml` (here with a second component) is read in
    the commit that adds it, not at the environment file's next change."""
    gitops.commit("prod", {"charts/pay/values-prod.yaml":
                           "image:\n  repository: ghcr.io/acme/pay\n  tag: aaaaaaa\n"})
    added = gitops.commit("shared values", {"charts/pay/values.yaml": (
        "worker:\n  image:\n    repository: ghcr.io/acme/pay-worker\n    tag: bbbbbbb\n")})
    gitops.commit("prod", {"charts/pay/values-prod.yaml":
                           "image:\n  repository: ghcr.io/acme/pay\n  tag: ccccccc\n"})
    result = history(gitops, tmp_path)
    worker = [d for d in result.deployments if d.service == "pay-worker"]
    assert [(d.release.version, d.gitops_commit) for d in worker] == [("bbbbbbb", added)]


def test_an_upper_case_production_folder_is_production(gitops: GitRepo, tmp_path: Path) -> None:
    """Discovery finds `PROD` as the environment prod (ranked last); it is production too, not
    a repository without one (no production figures)."""
    gitops.commit("x", {"apps/pay/PROD/kustomization.yaml": kustomization([image("pay", "58ddfd6")]),
                        overlay("pay", "dev"): kustomization([image("pay", "58ddfd6")])})
    result = history(gitops, tmp_path)
    assert result.environments == ("dev", "PROD")
    assert result.production == "PROD"


def _cluster(pay: str, worker: str | None = None) -> str:
    images = [{"name": "ghcr.io/acme/pay", "newTag": pay}]
    if worker:
        images.append({"name": "ghcr.io/acme/pay-worker", "newTag": worker})
    return kustomization(images)


def test_one_cluster_of_an_environment_removed_is_not_a_deployment(
        gitops: GitRepo, tmp_path: Path) -> None:
    """Two cluster folders give pay in prod; removing one is no deployment (it was one of the
    other cluster's release, read from the GitOps history alone as a rollback), and status shows
    what the remaining cluster runs, since it was deployed there."""
    eu, us = "apps/pay/prod/eu/kustomization.yaml", "apps/pay/prod/us/kustomization.yaml"
    gitops.commit("both", {eu: _cluster("aaaaaaa"), us: _cluster("aaaaaaa")})
    eu_bump = gitops.commit("eu", {eu: _cluster("ccccccc")})
    gitops.commit("us", {us: _cluster("ddddddd")})
    gitops.commit("drop us", {us: None})
    result = history(gitops, tmp_path)
    assert [d.release.version for d in result.deployments] == ["aaaaaaa", "ccccccc", "ddddddd"]
    state = result.state("pay", "prod")
    assert state is not None
    assert (state.release.version, state.manifest, state.gitops_commit) == (
        "ccccccc", eu, eu_bump)


def test_the_cluster_whose_release_changed_gives_it(gitops: GitRepo, tmp_path: Path) -> None:
    """One commit bumps pay in the us cluster and only the worker in the eu cluster: pay's
    deployment is the us release (the eu folder, first by name, changed too, and its unchanged
    pay release hid the deployment)."""
    eu, us = "apps/pay/prod/eu/kustomization.yaml", "apps/pay/prod/us/kustomization.yaml"
    gitops.commit("both", {eu: _cluster("aaaaaaa", "1111111"), us: _cluster("aaaaaaa")})
    gitops.commit("bump", {eu: _cluster("aaaaaaa", "2222222"), us: _cluster("bbbbbbb")})
    result = history(gitops, tmp_path)
    pay = [(d.release.version, d.manifest) for d in result.deployments if d.service == "pay"]
    assert pay == [("aaaaaaa", eu), ("bbbbbbb", us)]


def test_an_unreadable_gitops_folder_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               ) -> None:
    """As a user who may not read it (root reads everything, so the refusal is simulated)."""
    from devex_cli.errors import UsageError
    from devex_cli.gitcli import local_repository

    def refuse(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", refuse)
    with pytest.raises(UsageError, match=r"cannot read the GitOps repository .*Permission denied"):
        local_repository(str(tmp_path / "gitops"), tmp_path / "cache", what="GitOps repository")


def test_the_branch_read_is_the_one_checked_out_unless_one_is_set(
        gitops: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gitops.branch, the branch checked out (a detached checkout: the commit it has),
    found by one git process; with it, that branch, whatever is checked out, and not a tag of
    its name (git alone prefers the tag); an empty repository has no branch yet."""
    from devex_cli.errors import UsageError
    from devex_cli.sources import gitops as source

    asked: list[tuple[str, ...]] = []
    real = source.git

    def spy(repo: Path, *args: str, **options: object) -> str:
        asked.append(args)
        return real(repo, *args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(source, "git", spy)

    with pytest.raises(UsageError, match="has no branch 'main'"):
        history(GitRepo(tmp_path / "empty"), tmp_path)
    first = gitops.commit("pay 1", {overlay("pay", "prod"): kustomization([image("pay", "1.0")])})
    gitops.git("tag", "main")  # a tag of the branch's name: the branch is still read
    second = gitops.commit("pay 2", {overlay("pay", "prod"): kustomization([image("pay", "2.0")])})
    asked.clear()
    on_main = history(gitops, tmp_path)
    # (git names it so while a tag has its name)
    assert (on_main.branch, on_main.head, len(on_main.deployments)) == ("heads/main", second, 2)
    assert [a for a in asked if a[0] in ("rev-parse", "symbolic-ref")] == [
        ("rev-parse", "HEAD^{commit}", "--abbrev-ref", "HEAD")]
    gitops.git("checkout", "-q", "--detach", first)
    detached = history(gitops, tmp_path)
    assert (detached.branch, detached.head, len(detached.deployments)) == ("HEAD", first, 1)
    configured = history(gitops, tmp_path, '[gitops]\nbranch = "main"\n')
    assert (configured.branch, configured.head, len(configured.deployments)) == (
        "main", second, 2)
