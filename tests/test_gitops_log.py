"""The GitOps log matches its pathspecs itself (git matching wildcard pathspecs against every
entry of every tree it compares was quadratic in the services' folders): what it reads is
exactly what `git log -- PATHSPECS` lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devex_cli.gitops_layout import ManifestTemplate
from devex_cli.sources import gitops
from tests.gitworld import GitRepo

PATHS = (
    "top.yaml", "top.yml", "README.md", "apps/pay/overlays/dev/kustomization.yaml",
    "apps/pay/overlays/dev/sub/extra.yaml", "apps/pay/overlays/dev/values.json",
    "apps/pay/overlays/dev/notes.txt", "apps/pay/overlays/dev/sub/notes.txt",
    "envs/qa/deep/web.cfg", "apps/web/base/deployment.yml",
    "charts/pay/templates/deployment.yaml", "charts/pay/templates.yaml",
    "charts/pay/values-prod.yaml", ".github/workflows/ci.yaml", "a/.hidden/x.yaml",
    "a/b.yaml/c.txt", "envs/prod/pay.yaml", "envs/prod/pay.json", "envs/qa/web.cfg",
    "legacy/payments-old/x.cfg", "legacy/payments/deep/file.cfg", "deploy/web.tmpl",
    "deploy/web.tmpl.orig",
    "weird [name]/x.yaml", "weird/x?.yaml", "templates/top.yaml", "x.yaml.bak",
)
TEMPLATES = (
    ManifestTemplate("apps/{service}/overlays/{environment}/"),
    ManifestTemplate("envs/{environment}/{service}.json"),
    ManifestTemplate("envs/*/{service}.cfg"),
    ManifestTemplate("legacy/payments", service="payments"),
    ManifestTemplate("deploy/web.tmpl", service="web"),
)


def git_listed(repo: Path, pathspecs: list[str]) -> list[tuple[str, list[str]]]:
    """What git itself lists for the pathspecs: each commit and the paths it changed."""
    out = GitRepo.__new__(GitRepo)
    out.path = repo
    text = out.git("log", "--first-parent", "--reverse", "--no-renames", "--name-only",
                   "--format=%x01%H", "--", *pathspecs)
    listed = []
    for chunk in text.split("\x01")[1:]:
        sha, *paths = [line for line in chunk.splitlines() if line]
        listed.append((sha, paths))
    return listed


@pytest.mark.parametrize("templates", [(), TEMPLATES], ids=["discovery", "templates"])
def test_the_log_reads_what_git_lists_for_the_pathspecs(tmp_path: Path,
                                                        templates: Any) -> None:
    repo = GitRepo(tmp_path / "gitops")
    for n, path in enumerate(PATHS):  # a commit for each path, then one changing them all
        repo.commit(f"add {path}", {path: f"{n}\n"})
    repo.commit("change all", {path: "again\n" for path in PATHS})
    repo.commit("remove some", {path: None for path in PATHS[::3]})
    pathspecs = gitops._pathspecs(templates)
    read = [(c.sha, [change.path for change in c.changes])
            for c in gitops._log(repo.path, "HEAD", pathspecs)]
    assert read == git_listed(repo.path, pathspecs)
    assert any(paths for _, paths in read)


def test_git_is_given_no_pathspec_to_match(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """git compares only the trees that changed when it has no pathspec to match in each."""
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("one", {"apps/pay/overlays/dev/kustomization.yaml": "a: 1\n"})
    calls: list[tuple[str, ...]] = []
    real = gitops.git

    def recording(path: Path, *args: str, **kwargs: Any) -> Any:
        calls.append(args)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gitops, "git", recording)
    assert len(gitops._log(repo.path, "HEAD", gitops._pathspecs(TEMPLATES))) == 1
    (log,) = calls
    assert log[-1] == "--" and not any(a.startswith(":(") for a in log)


def test_every_commit_leaves_out_a_side_branch_a_merge_discarded(tmp_path: Path) -> None:
    """`gitops.history = "all"`: a side branch whose change a merge threw away (`-s ours`) never
    reached the branch's tree, so its commit is no deployment; git's history simplification by
    the paths leaves it out (as it did before the paths were matched in Python), while a side
    branch merged for real is read."""
    repo = GitRepo(tmp_path / "gitops")
    overlay = "apps/pay/overlays/dev/kustomization.yaml"
    repo.commit("one", {overlay: "a: 1\n"})
    for branch, content, strategy in (("thrown", "a: 2\n", ["-s", "ours"]),
                                      ("kept", "a: 3\n", [])):
        repo.checkout(branch, create=True)
        repo.commit(f"on {branch}", {overlay: content})
        repo.checkout("main")
        repo.git("merge", "-q", "--no-ff", *strategy, "-m", f"merge {branch}", branch)
    pathspecs = gitops._pathspecs(TEMPLATES)
    read = [c.sha for c in gitops._log(repo.path, "HEAD", pathspecs, every=True)]
    assert repo.sha("thrown") not in read
    assert repo.sha("kept") in read and repo.sha("main~2") in read
