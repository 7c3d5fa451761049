from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devex_cli.config import find_config_file, load_settings
from devex_cli.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.source is None
    assert settings.gitops.manifests == ()  # none: the layout is discovered
    assert settings.gate.environment == "qa"
    assert settings.jira.batch_size == 100


def test_nearest_file_up_to_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "a" / "b").mkdir(parents=True)
    config = write(repo / "devex.toml", "[gate]\nenvironment = 'uat'\n")
    write(tmp_path / "devex.toml", "[gate]\nenvironment = 'outside'\n")
    assert find_config_file(repo / "a" / "b", {}) == config
    assert load_settings(environ={}, cwd=repo / "a" / "b").gate.environment == "uat"


def test_devex_config_variable(tmp_path: Path) -> None:
    config = write(tmp_path / "x.toml", "[jira]\nprojects = ['PROJ']\n")
    settings = load_settings(environ={"DEVEX_CONFIG": str(config)}, cwd=tmp_path)
    assert settings.jira.projects == ("PROJ",)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = write(tmp_path / "devex.toml", "[jira]\nurl = 'https://file.example'\n")
    settings = load_settings(config, environ={"JIRA_URL": "https://env.example"})
    assert settings.jira.url == "https://env.example"
    assert load_settings(config, environ={}).jira.url == "https://file.example"


def test_a_list_variable_of_blanks_and_commas_is_unset(tmp_path: Path) -> None:
    """DEVEX_COLLECT_SERVICES=" " (a template that rendered nothing) keeps the file's set: it
    does not widen a collector to every service, as an empty value does not."""
    config = write(tmp_path / "devex.toml", "[collect]\nservices = ['cat*']\n")
    for blank in ("", " ", ",", " , "):
        settings = load_settings(config, environ={"DEVEX_COLLECT_SERVICES": blank})
        assert settings.collect.services == ("cat*",), blank
    settings = load_settings(config, environ={"DEVEX_COLLECT_SERVICES": " pay* , checkout,"})
    assert settings.collect.services == ("pay*", "checkout")


def test_services(tmp_path: Path) -> None:
    config = write(tmp_path / "devex.toml", """
[services.payments]
image = "ghcr.io/org/payments-api"
aliases = ["payment"]
""")
    service = load_settings(config, environ={}).services["payments"]
    assert service.image == "ghcr.io/org/payments-api"
    assert service.aliases == ("payment",)


@pytest.mark.parametrize(("text", "message"), [
    ("[jira]\nurll = 'x'\n", "unknown key jira.urll"),
    ("[jiraa]\n", r"unknown section \[jiraa\]"),
    ("[jira]\nbatch_size = 'ten'\n", "jira.batch_size must be a non-negative integer, not str"),
    ("[gitops]\nmanifests = 'apps/x'\n", "gitops.manifests must be a list of strings"),
    ("[services.x]\nimagee = 'y'\n", "unknown key services.x.imagee"),
    ("[services]\nx = 1\n", "services.x must be a table"),
    ("[jira\n", "is not valid TOML"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "devex.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_pipeline_context_from_bitbucket_and_local_git(tmp_path: Path) -> None:
    from devex_cli.pipeline_context import PipelineContext, pipeline_context
    from tests.gitworld import GitRepo

    repo = GitRepo(tmp_path / "app")
    sha = repo.commit("PROJ-1 first", {"a": "1"})
    context, local = pipeline_context({}, repo.path)
    assert context.commit == sha and context.branch == "main"
    assert local is not None and local.author == "Dev One" and local.subject == "PROJ-1 first"
    env = {"BITBUCKET_COMMIT": "abc1234", "BITBUCKET_BRANCH": "feature/x",
           "BITBUCKET_BUILD_NUMBER": "42", "BITBUCKET_PR_ID": "", "BITBUCKET_REPO_SLUG": "app",
           "BITBUCKET_GIT_HTTP_ORIGIN": "https://bitbucket.org/acme/app"}
    context, _ = pipeline_context(env, repo.path)
    assert context.commit == "abc1234" and context.branch == "feature/x"
    assert context.pr_id is None and context.build_number == "42"
    assert context.build_url == "https://bitbucket.org/acme/app/pipelines/results/42"
    assert PipelineContext.from_environment({}).build_number is None
    _, outside = pipeline_context({}, tmp_path)
    assert outside is None


def test_json_cache_is_private_and_not_rewritten_unchanged(tmp_path: Path) -> None:
    import stat

    from devex_cli.cache import LIST, JsonCache, entries, map_of

    def facts() -> JsonCache:
        return JsonCache(tmp_path / "c", "facts", version=1, shape=entries(map_of(LIST)))

    cache = facts()
    assert cache.load() == {}
    cache.save({"a": {"x": [1]}})
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700
    again = facts()
    data = again.load()
    before = cache.path.stat().st_mtime_ns
    again.save(data)  # nothing new: not written
    assert cache.path.stat().st_mtime_ns == before
    data["a"]["y"] = [2]
    again.save(data)
    assert facts().load() == {"a": {"x": [1], "y": [2]}}
    cache.path.write_text("{broken")
    assert facts().load() == {}


@pytest.mark.parametrize(("setting", "key"), [
    ("timeout = nan", "http.timeout"), ("timeout = inf", "http.timeout"),
    ("timeout = 0", "http.timeout"), ("timeout = -1.5", "http.timeout"),
    ("backoff = nan", "http.backoff"), ("backoff = -inf", "http.backoff"),
    ("max_retry_after = inf", "http.max_retry_after"), ("retries = -1", "http.retries"),
    ("max_response_bytes = 0", "http.max_response_bytes"),
    ("max_response_bytes = -5", "http.max_response_bytes"),
    ("max_response_bytes = 1.5", "http.max_response_bytes"),
])
def test_http_settings_out_of_range_are_config_errors(devex: Any, tmp_path: Path, setting: str,
                                                      key: str) -> None:
    """Accepted before, they crashed later (exit 70) or hung: now exit 2 naming the key."""
    from tests.gitworld import GitRepo, image, kustomization, overlay

    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("qa", {overlay("pay", "qa"): kustomization([image("pay", "58ddfd6")])})
    config = write(tmp_path / "f.toml", f"[http]\n{setting}\n")
    result = devex("status", "--offline", "--gitops", str(gitops.path), config=str(config))
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith(f"devex: error: {config}: {key} must be "), result.err


def test_http_settings_in_range(tmp_path: Path) -> None:
    config = write(tmp_path / "f.toml", "[http]\ntimeout = 0.5\nbackoff = 0\nmax_retry_after = 0\n"
                                        "retries = 0\nmax_response_bytes = 1024\n")
    http = load_settings(config, environ={}).http
    assert (http.timeout, http.backoff, http.retries, http.max_response_bytes) == (0.5, 0, 0, 1024)
    assert load_settings(tmp_path / "f.toml", environ={}).http.max_response_bytes == 1024
    write(tmp_path / "f.toml", "[http]\ntimeout = 1\n")
    assert load_settings(tmp_path / "f.toml", environ={}).http.max_response_bytes == 50 << 20
