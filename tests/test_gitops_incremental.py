"""The GitOps reader keeps its state at the branch head and reads only the commits since.

Every test compares the incremental answer with a read from an empty cache: whatever the reader
keeps between runs, the history it returns must be the one a full read gives.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from devex_cli.config import Settings, load_settings
from devex_cli.sources import gitops
from devex_cli.sources.gitops import GitOpsHistory, read_history
from tests.gitops_shapes import SHAPES
from tests.gitworld import GitRepo, kustomization, overlay

REG = "registry.acme.example/org"


def settings(tmp_path: Path, cache: str, config: str = "") -> Settings:
    path = tmp_path / "devex-incremental.toml"
    path.write_text(config)
    return load_settings(path, environ={"XDG_CACHE_HOME": str(tmp_path / cache)})


def answer(history: GitOpsHistory) -> tuple[Any, ...]:
    return (history.head, history.deployments, dict(history.current), history.skipped,
            history.broken_at_head, history.environments, history.services, history.production)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The revisions each `git log` of the reader was asked for."""
    asked: list[str] = []
    real = gitops._log

    def spy(repo: Path, revisions: str, templates: Any, **options: Any) -> Any:
        asked.append(revisions)
        return real(repo, revisions, templates, **options)

    monkeypatch.setattr(gitops, "_log", spy)
    return asked


def all_shapes(repo: GitRepo) -> str:
    config = ""
    for shape in sorted(SHAPES):
        config += SHAPES[shape](repo).config
    # a manifest broken for two commits, then fixed
    repo.commit("broken", {overlay("web", "dev"): "images: [unclosed\n"})
    repo.commit("still broken", {overlay("web", "dev"): "images: {\n"})
    repo.commit("fixed", {overlay("web", "dev"): kustomization(
        [{"name": f"{REG}/web", "newTag": "4d4d4d4"}])})
    return config


def test_every_cut_of_a_messy_history_reads_as_a_full_read(tmp_path: Path,
                                                          logs: list[str]) -> None:
    """Read at each commit, then at the head: the same history as a read from nothing."""
    repo = GitRepo(tmp_path / "gitops")
    config = all_shapes(repo)
    head = repo.sha()
    chain = repo.git("rev-list", "--first-parent", "--reverse", "main").split()
    full = answer(read_history(repo.path, settings(tmp_path, "fresh", config)))
    assert full[1], "the shapes give deployments"
    for n, cut in enumerate(chain[:-1]):
        repo.git("update-ref", "refs/heads/main", cut)
        cache = f"cut-{n}"
        read_history(repo.path, settings(tmp_path, cache, config))
        repo.git("update-ref", "refs/heads/main", head)
        logs.clear()
        again = read_history(repo.path, settings(tmp_path, cache, config))
        assert logs == [f"{cut}..{head}"], f"cut {n} was not read incrementally"
        assert answer(again) == full, f"cut {n}"


def test_nothing_new_reads_no_log(tmp_path: Path, logs: list[str]) -> None:
    repo = GitRepo(tmp_path / "gitops")
    config = all_shapes(repo)
    first = read_history(repo.path, settings(tmp_path, "c", config))
    logs.clear()
    second = read_history(repo.path, settings(tmp_path, "c", config))
    assert logs == []
    assert answer(second) == answer(first)


def test_a_new_image_name_that_remaps_a_path_reads_everything_again(
        tmp_path: Path, logs: list[str]) -> None:
    """One image name in an overlay is its service; a second one makes each image a service of
    its own (the contract's rule 4), which changes how the older commits read."""
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("one", {overlay("shop", "prod"): kustomization(
        [{"name": f"{REG}/storefront", "newTag": "1a1a1a1"}])})
    repo.commit("two", {overlay("shop", "prod"): kustomization(
        [{"name": f"{REG}/storefront", "newTag": "2b2b2b2"}])})
    before = read_history(repo.path, settings(tmp_path, "c"))
    assert before.services == ("shop",)
    repo.commit("sidecar", {overlay("shop", "prod"): kustomization(
        [{"name": f"{REG}/storefront", "newTag": "2b2b2b2"},
         {"name": f"{REG}/checkout", "newTag": "3c3c3c3"}])})
    logs.clear()
    after = read_history(repo.path, settings(tmp_path, "c"))
    assert logs[-1] == repo.sha(), "the whole branch was read again"
    assert after.services == ("checkout", "storefront")
    assert answer(after) == answer(read_history(repo.path, settings(tmp_path, "fresh")))


def test_a_rewritten_branch_reads_everything_again(tmp_path: Path, logs: list[str]) -> None:
    repo = GitRepo(tmp_path / "gitops")
    for tag in ("1a1a1a1", "2b2b2b2", "3c3c3c3"):
        repo.commit(tag, {overlay("api", "prod"): kustomization(
            [{"name": f"{REG}/api", "newTag": tag}])})
    read_history(repo.path, settings(tmp_path, "c"))
    repo.git("reset", "-q", "--hard", "HEAD~2")
    repo.commit("force-pushed", {overlay("api", "prod"): kustomization(
        [{"name": f"{REG}/api", "newTag": "9f9f9f9"}])})
    logs.clear()
    after = read_history(repo.path, settings(tmp_path, "c"))
    assert logs == [repo.sha()]
    assert [d.release.revision for d in after.deployments] == ["1a1a1a1", "9f9f9f9"]
    assert answer(after) == answer(read_history(repo.path, settings(tmp_path, "fresh")))


def test_changed_settings_read_everything_again(tmp_path: Path, logs: list[str]) -> None:
    repo = GitRepo(tmp_path / "gitops")
    SHAPES["renamed_service"](repo)
    without = read_history(repo.path, settings(tmp_path, "c"))
    assert set(without.services) == {"payment", "payments"}
    logs.clear()
    config = '[services.payments]\naliases = ["payment"]\n'
    with_alias = read_history(repo.path, settings(tmp_path, "c", config))
    assert logs == [repo.sha()]
    assert with_alias.services == ("payments",)


def test_a_digits_only_tag_judged_differently_reads_everything_again(
        tmp_path: Path, logs: list[str]) -> None:
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("digits", {overlay("auth", "prod"): kustomization(
        [{"name": f"{REG}/auth", "newTag": "0054442"}])})
    known: set[str] = set()
    asked: list[list[tuple[str, str]]] = []

    def checker(pairs: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
        asked.append(list(pairs))
        return [(service, sha) for service, sha in pairs if sha in known]

    first = read_history(repo.path, settings(tmp_path, "c"), has_commit=checker)
    assert first.current[("auth", "prod")].release.revision is None
    known.add("0054442")  # the app repository now has that commit
    logs.clear()
    second = read_history(repo.path, settings(tmp_path, "c"), has_commit=checker)
    assert logs == [repo.sha()]
    assert second.current[("auth", "prod")].release.revision == "0054442"
    assert asked == [[("auth", "0054442")]] * 3  # read, asked again, read again
    third = read_history(repo.path, settings(tmp_path, "c"), has_commit=checker)
    assert len(asked) == 3  # a tag that names a commit keeps naming it: not asked again
    assert answer(third) == answer(second)


def test_an_unreadable_state_is_a_full_read(tmp_path: Path, logs: list[str]) -> None:
    repo = GitRepo(tmp_path / "gitops")
    config = all_shapes(repo)
    read_history(repo.path, settings(tmp_path, "c", config))
    store = tmp_path / "c" / "devex" / "devex.sqlite3"
    with contextlib.closing(sqlite3.connect(store)) as db, db:
        assert db.execute("SELECT sum(count) FROM reader_batch").fetchone()[0] > 1
        db.execute("UPDATE reader_batch SET rows = json_replace(rows, '$[1][7]', 'x')")
    logs.clear()
    again = read_history(repo.path, settings(tmp_path, "c", config))
    assert logs == [repo.sha()]
    assert answer(again) == answer(read_history(repo.path, settings(tmp_path, "fresh", config)))
    assert store.stat().st_mode & 0o777 == 0o600


def test_readers_with_and_without_a_checker_keep_their_own_state(
        tmp_path: Path, logs: list[str]) -> None:
    """`status` (no checker), `collect` (app repositories) and a gate (its own service) judge
    digits-only tags differently: each keeps its state instead of undoing the others'."""
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("digits", {overlay("auth", "prod"): kustomization(
        [{"name": f"{REG}/auth", "newTag": "0054442"}])})
    config = settings(tmp_path, "c")
    def checked(pairs: Collection[tuple[str, str]]) -> Collection[tuple[str, str]]:
        return pairs

    for _ in range(2):
        plain = read_history(repo.path, config)
        collect = read_history(repo.path, config, has_commit=checked)
        gate = read_history(repo.path, config, has_commit=lambda pairs: [],
                            variant="gate-x")
    assert logs == [repo.sha()] * 3  # one full read each, then nothing
    assert plain.current[("auth", "prod")].release.revision is None
    assert collect.current[("auth", "prod")].release.revision == "0054442"
    assert gate.current[("auth", "prod")].release.revision is None


def test_commits_after_a_synced_revision(tmp_path: Path) -> None:
    """What Argo CD's sync revision is behind by: only the commits since, or None off-branch."""
    repo = GitRepo(tmp_path / "gitops")
    first = repo.commit("one", {"a": "1"})
    repo.checkout("side", create=True)
    side = repo.commit("side", {"b": "1"})
    repo.checkout("main")
    second = repo.commit("two", {"a": "2"})
    merge = repo.merge("side", "merge side")
    third = repo.commit("three", {"a": "3"})
    assert gitops.commits_after(repo.path, third, third) == set()
    assert gitops.commits_after(repo.path, second, third) == {merge, third}
    assert gitops.commits_after(repo.path, first, third) == {second, merge, third}
    assert gitops.commits_after(repo.path, side, third) is None  # not on the first-parent chain
    assert gitops.commits_after(repo.path, "0" * 40, third) is None


# -- random histories, read by the pure reader ------------------------------------------------

_PATHS = (
    "apps/pay/overlays/prod/kustomization.yaml", "apps/pay/overlays/dev/kustomization.yaml",
    "apps/pay/base/kustomization.yaml", "apps/pay/base/deployment.yaml",
    "apps/pay/overlays/prod/deployment.yaml", "apps/pay/overlays/prod/patch-prod.yaml",
    "apps/pay/overlays/prod/.argocd-source-pay.yaml", "apps/cart/prod/kustomization.yaml",
    "envs/prod/pay/deployment.yaml", "envs/prod/cart/deployment.yaml",
    "envs/dev/cart/deployment.yaml", "envs/prod/pay/eu/kustomization.yaml",
    "envs/prod/pay/kustomization.yaml", "charts/pay/values.yaml", "charts/pay/values-prod.yaml",
    "charts/pay/values-dev.yaml", "prod/kustomization.yaml", "prod/deployment.yaml",
    "values-prod.yaml", "values.yaml", "apps/pay/prod.yaml", "apps/pay/dev.yaml")
_IMAGES = ("ghcr.io/acme/pay", "ghcr.io/acme/cart", "redis", "bitnami/postgresql",
           "ghcr.io/acme/pay-worker")
_TAGS = ("aaaaaaa", "bbbbbbb", "1.0", "latest", "0054442", "1.2-aaaaaaa", "aaaaaaa-2", "7.2")


def _random_file(rng: Any, path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    tag = rng.choice(_TAGS)
    if rng.random() < 0.05:
        return "images: [\n"
    if name == "kustomization.yaml":
        text = "kind: Kustomization\nresources:\n- " + rng.choice(
            ["../../base", "deployment.yaml", "..", "patch-prod.yaml", "../base"]) + "\n"
        entries = rng.sample(_IMAGES, rng.randint(0, 2))
        return text + ("images:\n" if entries else "") + "".join(
            f"- name: {e}\n  newTag: {rng.choice(_TAGS)}\n" for e in entries)
    if name.startswith(".argocd-source"):
        return f"kustomize:\n  images:\n  - {rng.choice(_IMAGES)}:{tag}\n"
    if name.startswith("values") or name in ("prod.yaml", "dev.yaml"):
        if rng.random() < 0.3:
            return f"image:\n  tag: {tag}\n"
        return f"image:\n  repository: {rng.choice(_IMAGES)}\n  tag: {tag}\n"
    kind = rng.choice(["Deployment", "StatefulSet", "Job"])
    return (f"apiVersion: apps/v1\nkind: {kind}\nspec:\n  template:\n    spec:\n      containers:"
            f"\n      - image: {rng.choice(_IMAGES)}:{tag}\n")


def _random_history(seed: int, length: int = 8) -> tuple[list[Any], dict[str, Any]]:
    import hashlib
    import random
    from datetime import UTC, datetime, timedelta

    from devex_cli.gitops_reader import Change, Commit
    from devex_cli.manifests import ManifestError, fact_key, parse_manifest

    rng = random.Random(seed)
    tree: dict[str, str] = {}
    commits, facts = [], {}

    def write(path: str, text: str) -> Change:
        tree[path] = text
        blob = hashlib.sha256(text.encode()).hexdigest()[:40]
        try:
            facts[fact_key(path, blob)] = parse_manifest(path.rsplit("/", 1)[-1], text.encode())
        except ManifestError as exc:
            facts[fact_key(path, blob)] = exc
        return Change(path, blob)

    for n in range(length):
        changes: dict[str, Change] = {}
        for _ in range(rng.randint(1, 4)):
            path, roll = rng.choice(_PATHS), rng.random()
            if path in tree and roll < 0.15:
                del tree[path]
                changes[path] = Change(path, None)
            elif path in tree and roll < 0.25:  # a move
                to = rng.choice(_PATHS)
                if to not in tree:
                    text = tree.pop(path)
                    changes[path] = Change(path, None)
                    changes[to] = write(to, text)
            else:
                changes[path] = write(path, _random_file(rng, path))
        commits.append(Commit(f"{n:040x}", datetime(2026, 1, 1, n, tzinfo=UTC)
                              + timedelta(minutes=1), list(changes.values())))
    return commits, facts


def _read_at_every_cut(seed: int) -> int:
    """Random units, tags, moves and deletions: a state read up to any commit, dumped to JSON and
    loaded, then given the rest, answers as a read of everything (or asks for one). Returns how
    many cuts were read on top of their state (the rest asked for a read of everything)."""
    from devex_cli.gitops_layout import ENVIRONMENT_NAMES
    from devex_cli.gitops_reader import Layout, ReaderState
    from devex_cli.gitops_reader import Settings as Reading

    commits, facts = _random_history(seed)
    reading = Reading(Layout([], discover=True, environments=ENVIRONMENT_NAMES,
                             production="prod"))

    def checker(pairs: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
        return [pair for pair in pairs if pair[1] == "0054442"]

    def seen(state: ReaderState) -> tuple[Any, ...]:
        return (state.deployments, state.redeployments, state.current, state.skipped,
                state.broken, state.third_party_at_head(), state.owners(), state.unread_files())

    full = ReaderState("f")
    assert full.apply(commits, facts, reading, checker)
    incremental = 0
    for cut in range(1, len(commits)):
        state: ReaderState | None = ReaderState("f")
        assert state is not None and state.apply(commits[:cut], facts, reading, checker)
        state = ReaderState.load(json.loads(json.dumps(state.dump())), "f")
        assert state is not None
        if state.apply(commits[cut:], facts, reading, checker):
            incremental += 1
        else:
            state = ReaderState("f")
            state.apply(commits, facts, reading, checker)
        assert seen(state) == seen(full), f"cut {cut}"
    return incremental


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_histories_read_at_every_cut_as_a_full_read(seed: int) -> None:
    _read_at_every_cut(seed)


def test_most_cuts_of_random_histories_stay_incremental() -> None:
    """The test above would pass if every cut asked for a read of everything: most must not."""
    cuts = sum(len(_random_history(seed)[0]) - 1 for seed in SEEDS)
    incremental = sum(_read_at_every_cut(seed) for seed in SEEDS)
    assert incremental * 2 > cuts, f"{incremental} of {cuts} cuts read incrementally"


def test_new_commits_add_only_their_deployments_to_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's deployments are rows: a read of new commits writes their deployments only
    (and the small body), nothing new writes nothing, and a rewritten branch writes them all."""
    from devex_cli.store import ReaderStateStore

    written: list[tuple[int, int]] = []  # (first position, rows) of each save
    real = ReaderStateStore.save

    def save(store: ReaderStateStore, name: str, body: str, rows: Any, start: int,
             generation: str | None) -> None:
        def counted(first: int) -> Any:
            found = rows(first)
            written.append((first, len(found)))
            return found
        real(store, name, body, counted, start, generation)

    monkeypatch.setattr(ReaderStateStore, "save", save)
    repo = GitRepo(tmp_path / "gitops")
    config = all_shapes(repo)
    first = read_history(repo.path, settings(tmp_path, "c", config))
    (start, total), = written  # every deployment the reader found (some not shown)
    assert start == 0 and total >= len(first.deployments) > 0
    read_history(repo.path, settings(tmp_path, "c", config))
    assert len(written) == 1  # nothing new: nothing written
    before = repo.sha()
    for tag in ("5e5e5e5", "6f6f6f6"):
        repo.commit(f"web {tag}", {overlay("web", "dev"): kustomization(
            [{"name": f"{REG}/web", "newTag": tag}])})
    again = read_history(repo.path, settings(tmp_path, "c", config))
    assert written[1:] == [(total, 2)]
    assert answer(again) == answer(read_history(repo.path, settings(tmp_path, "fresh", config)))
    written.clear()
    repo.git("update-ref", "refs/heads/main", before)  # rewritten: another commit instead
    repo.commit("web 7a7a7a7", {overlay("web", "dev"): kustomization(
        [{"name": f"{REG}/web", "newTag": "7a7a7a7"}])})
    rewritten = read_history(repo.path, settings(tmp_path, "c", config))
    (start, total), = written
    assert start == 0 and total >= len(rewritten.deployments) > 0
    assert answer(rewritten) == answer(read_history(repo.path, settings(tmp_path, "fresh2",
                                                                          config)))


def test_rows_are_added_only_to_the_state_they_follow(tmp_path: Path) -> None:
    """Two runs read a state; one reads the history again (new rows from the start), the other
    then adds rows after what it loaded: it writes all of its rows instead of mixing them with
    the other's."""
    from devex_cli.store import ReaderStateStore

    def rows(prefix: str, count: int) -> Any:
        return lambda first: [(f"{prefix}{n}", "e", "v", None, None, None, "c", n, "m")
                              for n in range(first, count)]

    store = ReaderStateStore(tmp_path)
    store.save("s", "{}", rows("a", 3), 0, None)
    kept = store.load("s")
    assert kept is not None and [r[0] for r in kept[1]] == ["a0", "a1", "a2"]
    store.save("s", "{}", rows("b", 3), 0, None)  # the other run: read again
    store.save("s", "{}", rows("a", 5), 3, kept[2])  # this one: two more after its three
    again = store.load("s")
    assert again is not None and [r[0] for r in again[1]] == ["a0", "a1", "a2", "a3", "a4"]
    store.save("s", "{}", rows("a", 6), 5, again[2])  # following its own: only the new one
    assert store.written["reader_batch"] == 3 + 3 + 5 + 1
    last = store.load("s")
    assert last is not None and [r[0] for r in last[1]][-2:] == ["a4", "a5"]


def _rows(prefix: str, count: int) -> Any:
    return lambda first: [(f"{prefix}{n}", "e", "v", None, None, None, "c", n, "m")
                          for n in range(first, count)]


def test_many_small_saves_are_gathered_into_one_batch(tmp_path: Path) -> None:
    """Each save of new deployments adds a batch; past `_BATCHES` of them, the next save
    writes the state's deployments as one (a collector run every minute does not pile up
    thousands), and they read back in order."""
    from devex_cli import store as module

    store = module.ReaderStateStore(tmp_path)
    store.save("s", "{}", _rows("a", 1), 0, None)
    kept = store.load("s")
    assert kept is not None
    counts = []
    for n in range(2, module._BATCHES + 4):
        store.save("s", "{}", _rows("a", n), n - 1, kept[2])
        with contextlib.closing(sqlite3.connect(tmp_path / module.FILE_NAME)) as db:
            counts.append(db.execute("SELECT count(*) FROM reader_batch").fetchone()[0])
    assert max(counts) == module._BATCHES and counts[-1] < 4
    loaded = store.load("s")
    assert loaded is not None and loaded[2] == kept[2]
    assert [r[0] for r in loaded[1]] == [f"a{n}" for n in range(module._BATCHES + 3)]


def test_a_batch_past_the_state_is_not_added_to(tmp_path: Path) -> None:
    """A batch a killed run left after the state's deployments is not read, and the next save
    writes the state's deployments again rather than after it."""
    from devex_cli import store as module

    store = module.ReaderStateStore(tmp_path)
    store.save("s", "{}", _rows("a", 3), 0, None)
    with contextlib.closing(sqlite3.connect(tmp_path / module.FILE_NAME)) as db, db:
        db.execute("INSERT INTO reader_batch (name, first, count, rows) VALUES ('s', 3, 1, ?)",
                   (json.dumps([["x", "e", "v", None, None, None, "c", 3, "m"]]),))
    kept = store.load("s")
    assert kept is not None and [r[0] for r in kept[1]] == ["a0", "a1", "a2"]
    store.save("s", "{}", _rows("a", 5), 3, kept[2])
    again = store.load("s")
    assert again is not None and [r[0] for r in again[1]] == ["a0", "a1", "a2", "a3", "a4"]


def test_a_state_is_read_as_one_while_another_process_writes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run loads a state (its body, then its batches) while another run writes a new
    generation of it: it reads the one or the other, never the body of one with the
    deployments of the other."""
    from devex_cli import store as module

    store = module.ReaderStateStore(tmp_path)
    store.save("s", '{"of": "a"}', _rows("a", 3), 0, None)
    path = tmp_path / module.FILE_NAME
    connect = sqlite3.connect
    written: list[bool] = []

    def write_meanwhile(statement: str) -> None:
        if "FROM reader_batch" in statement and not written:  # the other run, the body read
            written.append(True)
            # locked (OperationalError): it waits for this one
            with contextlib.closing(connect(path, timeout=0, isolation_level=None)) as other, \
                    contextlib.suppress(sqlite3.OperationalError):
                other.execute("BEGIN IMMEDIATE")
                other.execute("DELETE FROM reader_batch")
                other.execute("INSERT INTO reader_batch (name, first, count, rows) "
                              "VALUES ('s', 0, 4, ?)",
                              (json.dumps(_rows("b", 4)(0)),))
                other.execute("UPDATE reader_state SET body = '{\"of\": \"b\"}', "
                              "deployments = 4, generation = 'other'")
                other.execute("COMMIT")

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.set_trace_callback(write_meanwhile)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    found = store.load("s")
    assert written and found is not None
    body, rows, _ = found
    assert {json.loads(body)["of"]} == {row[0][0] for row in rows}


def test_runs_adding_to_one_state_side_by_side_do_not_mix_their_rows(tmp_path: Path) -> None:
    """Two runs load the same state and each adds its own new deployments (the branch moved
    differently under each); the second writes all of its rows again, as a new generation, so
    a third run that loaded the first one's rows writes all of its own rather than adding them
    after the second one's."""
    from devex_cli.store import ReaderStateStore

    store = ReaderStateStore(tmp_path)
    store.save("s", "{}", _rows("a", 3), 0, None)
    loaded = store.load("s")
    assert loaded is not None
    store.save("s", "{}", _rows("a", 5), 3, loaded[2])  # run A: a3, a4
    after_a = store.load("s")
    assert after_a is not None
    store.save("s", "{}", lambda first: [(f"{'a' if n < 3 else 'b'}{n}", "e", "v", None, None,
                                          None, "c", n, "m") for n in range(first, 5)],
               3, loaded[2])  # run B, from the same state: b3, b4
    after_b = store.load("s")
    assert after_b is not None and [r[0] for r in after_b[1]] == ["a0", "a1", "a2", "b3", "b4"]
    store.save("s", "{}", _rows("a", 6), 5, after_a[2])  # run C, from A's: a5
    last = store.load("s")
    assert last is not None and [r[0] for r in last[1]] == [f"a{n}" for n in range(6)]


def test_a_process_holding_its_states_goes_on_from_the_one_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: list[str]) -> None:
    """An exporter holds its reader states between collections (`reader_states_held`): a read
    takes the state in memory instead of parsing the store's, goes on from it with new commits
    (adding only their deployments to the store), starts again on a rewritten branch, and a
    save that failed is written whole by the next one. Each answer is a fresh read's."""
    from devex_cli.store import ReaderStateStore

    monkeypatch.setattr(gitops, "_held", {})  # this test's own, as `reader_states_held` makes
    loads: list[str] = []
    real_load, real_write = ReaderStateStore.load, ReaderStateStore._write
    store = tmp_path / "c" / "devex" / "devex.sqlite3"
    monkeypatch.setattr(ReaderStateStore, "load", lambda kept, name: (
        loads.append(name) if kept.path == store else None) or real_load(kept, name))
    written: list[int] = []
    repo = GitRepo(tmp_path / "gitops")
    config = all_shapes(repo)

    def fresh(n: int) -> tuple[Any, ...]:
        return answer(read_history(repo.path, settings(tmp_path, f"fresh{n}", config)))

    def read() -> tuple[Any, ...]:
        return answer(read_history(repo.path, settings(tmp_path, "c", config)))

    first = read()
    assert len(loads) == 1  # nothing held yet: the store (empty) is asked
    assert read() == first and len(loads) == 1  # the state in memory, not the store's
    for tag in ("5e5e5e5", "6f6f6f6"):
        repo.commit(f"web {tag}", {overlay("web", "dev"): kustomization(
            [{"name": f"{REG}/web", "newTag": tag}])})

    def counting(self: ReaderStateStore, rows: Any) -> bool:
        before = self.written.get("reader_batch", 0)
        done = real_write(self, rows)
        if self.path == store:
            written.append(self.written.get("reader_batch", 0) - before)
        return done

    monkeypatch.setattr(ReaderStateStore, "_write", counting)
    assert read() == fresh(1) and len(loads) == 1
    assert written == [2]  # only the two new deployments
    # a save that fails: the next one writes every deployment again
    monkeypatch.setattr(ReaderStateStore, "_write", lambda self, rows: False)
    repo.commit("web 7a7a7a7", {overlay("web", "dev"): kustomization(
        [{"name": f"{REG}/web", "newTag": "7a7a7a7"}])})
    assert read() == fresh(2) and len(loads) == 1
    monkeypatch.setattr(ReaderStateStore, "_write", counting)
    repo.commit("web 8b8b8b8", {overlay("web", "dev"): kustomization(
        [{"name": f"{REG}/web", "newTag": "8b8b8b8"}])})
    written.clear()
    held = read()
    assert held == fresh(3) and len(loads) == 1
    assert written and written[-1] >= len(held[1])  # all of them, not the last one alone
    # what the store has is the state in memory: a process that does not hold reads it back
    monkeypatch.setattr(gitops, "_held", None)
    assert read() == held and len(loads) == 2
    monkeypatch.setattr(gitops, "_held", {})
    read()
    # a rewritten branch: the held state does not follow it, the history is read again
    repo.git("update-ref", "refs/heads/main", repo.sha("HEAD~2"))
    repo.commit("web 9c9c9c9", {overlay("web", "dev"): kustomization(
        [{"name": f"{REG}/web", "newTag": "9c9c9c9"}])})
    logs.clear()
    rewritten = read()
    assert logs == [repo.sha()]  # read from the start
    assert rewritten == fresh(4)


def test_states_are_held_only_within_the_block(tmp_path: Path) -> None:
    """`reader_states_held` (an exporter's lifetime): reads inside it leave their state in
    memory; once it ends the states are let go and reads load the store again."""
    repo = GitRepo(tmp_path / "gitops")
    config = all_shapes(repo)
    assert gitops._held is None
    with gitops.reader_states_held():
        inside = read_history(repo.path, settings(tmp_path, "c", config))
        assert gitops._held is not None and len(gitops._held) == 1
    assert gitops._held is None
    assert answer(read_history(repo.path, settings(tmp_path, "c", config))) == answer(inside)


def test_a_read_says_which_deployments_its_new_commits_added(tmp_path: Path) -> None:
    """`added`: the deployments of the commits read since the kept state (their app sources
    are asked about them early); none when the whole history was read, or nothing is new."""
    repo = GitRepo(tmp_path / "gitops")
    for n, env in enumerate(("dev", "prod", "dev")):
        repo.commit(f"web {n}", {overlay("web", env): kustomization(
            [{"name": f"{REG}/web", "newTag": f"{n}a{n}b{n}c0"}])})
    first = read_history(repo.path, settings(tmp_path, "cache"))
    assert first.added == () and len(first.deployments) == 3
    assert read_history(repo.path, settings(tmp_path, "cache")).added == ()
    repo.commit("web 9", {overlay("web", "prod"): kustomization(
        [{"name": f"{REG}/web", "newTag": "9a9b9c0"}])})
    repo.commit("api 1", {overlay("api", "dev"): kustomization(
        [{"name": f"{REG}/api", "newTag": "1a1b1c0"}])})
    after = read_history(repo.path, settings(tmp_path, "cache"))
    assert [(d.service, d.environment, d.release.version) for d in after.added] == [
        ("web", "prod", "9a9b9c0"), ("api", "dev", "1a1b1c0")]
    assert tuple(after.deployments[-2:]) == after.added
    assert after.only(["api"]).added == after.added[1:]
