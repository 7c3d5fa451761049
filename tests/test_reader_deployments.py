"""gitops_reader.Deployments: a reader state's deployments, built as they are first used."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devex_cli.argocd_refine import _in_effect
from devex_cli.gitops_reader import Deployment, Deployments, ReaderState, Release


def rows(n: int, seed: int = 1) -> list[list[object]]:
    rng = random.Random(seed)
    out: list[list[object]] = []
    for i in range(n):
        service, environment = rng.choice(["pay", "web"]), rng.choice(["dev", "prod"])
        previous = out[-1][2:4] if out and rng.random() < 0.8 else [None, None]
        out.append([service, environment, f"v{i}", rng.choice([None, f"{i:07x}"]), *previous,
                    f"c{i:039x}", 1_700_000_000 + 60 * i, f"apps/{service}/{environment}"])
    return json.loads(json.dumps(out))  # as the store gives them: each string its own copy


def test_deployments_are_built_when_first_used_and_read_as_a_list() -> None:
    """Rows read back are checked at once and built one at a time; the sequence answers as the
    list of Deployment objects a state read commit by commit has (one Release object a
    release)."""
    table = [Release("v1", None)]
    read = rows(50)
    lazy = Deployments.of_rows(read, table)
    # rows read back share their names, and a release's strings with the next deployment of
    # its manifest (JSON gives each row its own copies)
    last: dict[object, list[object]] = {}
    shared = 0
    for row in read:
        before = last.get(row[8])
        if before is not None and row[4:6] == before[2:4]:
            assert row[4] is before[2] and row[5] is before[3]
            shared += 1
        assert row[8] is read[0][8] or row[8] != read[0][8]
        last[row[8]] = row
    assert shared > 3
    assert sum(b is not None for b in lazy._built) == 0
    assert lazy[-1] == lazy[49] and lazy[49].time == datetime.fromtimestamp(
        1_700_000_000 + 60 * 49, UTC)
    assert sum(b is not None for b in lazy._built) == 1
    eager = list(lazy)
    assert lazy == eager and lazy[10:13] == eager[10:13] and lazy[-3:] == eager[-3:]
    assert all(lazy[i].previous is lazy[i - 1].release for i in range(1, 50)
               if lazy[i].previous is not None)
    assert any(lazy[i].previous is not None for i in range(1, 50))
    assert lazy.pairs() == {(d.service, d.environment) for d in eager}
    assert [list(r) for r in lazy.rows(45)] == rows(50)[45:]
    with pytest.raises(IndexError):
        lazy[50]


def test_a_view_keeps_the_deployments_there_were() -> None:
    """A history keeps a view of its state's deployments: the state goes on (an exporter's
    next collection adds to it) and the view does not change."""
    state = ReaderState("f")
    state.deployments = Deployments.of_rows(rows(5), [])
    view = state.deployments.view()
    added = Deployment("pay", "qa", Release("v9", None), None, "c" * 40,
                       datetime(2026, 1, 1, tzinfo=UTC), "apps/pay/qa")
    state.deployments.append(added)
    assert len(view) == 5 and len(state.deployments) == 6 and list(view) == list(
        state.deployments)[:5]
    assert ("pay", "qa") in state.deployments.pairs() and ("pay", "qa") not in view.pairs()
    assert state.deployment_rows(5) == [("pay", "qa", "v9", None, None, None, "c" * 40,
                                         1_767_225_600, "apps/pay/qa")]
    with pytest.raises(TypeError):
        view.append(added)


@pytest.mark.parametrize(("at", "value"), [
    (7, "x"), (7, 10**20), (7, -10**12), (0, None), (1, 5), (5, "a"), (None, None)])
def test_a_damaged_row_is_found_when_read_back(at: int | None, value: object) -> None:
    """Every row is checked as the state is read back, built or not: a damaged one (a time of
    text or no year, no service, a previous revision without its version, a field lost) reads
    the state as not kept (TypeError/ValueError), not a failure later in the collection."""
    damaged = rows(20)
    if at is None:
        damaged[7].pop()
    else:
        damaged[7][4] = None if at == 5 else damaged[7][4]
        damaged[7][at] = value
    with pytest.raises((TypeError, ValueError)):
        Deployments.of_rows(damaged, [])


@pytest.mark.parametrize("seed", range(20))
def test_the_state_in_effect_is_each_keys_last_deployment_not_synced_past(seed: int) -> None:
    """Found from the newest back (only as far as needed): each key's last deployment whose
    GitOps commit is not among those after the application's sync revision, as a walk over
    every deployment finds it."""
    rng = random.Random(seed)
    deployments = Deployments.of_rows(rows(80, seed), [])
    later = {key: {d.gitops_commit for d in rng.sample(list(deployments), 30)}
             for key in [("pay", "dev"), ("pay", "prod"), ("web", "dev"), ("nope", "dev")]}
    expected = {}
    for key, commits in later.items():
        found = [d for d in deployments if (d.service, d.environment) == key
                 and d.gitops_commit not in commits]
        if found:
            expected[key] = found[-1]
    assert _in_effect(deployments, later) == expected
    assert _in_effect(tuple(deployments), later) == expected


def test_batches_whose_checksums_hold_are_read_when_first_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state's deployments are kept a few hundred a batch, each with its checksum and pairs:
    read back, a batch is parsed (and its rows checked) only when one of its deployments is
    first used, and its pairs are known without it. The deployments are those of the rows,
    whichever order they are used in; a batch whose text changed makes the state unread."""
    import contextlib
    import sqlite3

    from devex_cli.store import _CHUNK, KeptRows, ReaderStateStore

    kept = rows(3 * _CHUNK + 7, seed=3)
    store = ReaderStateStore(tmp_path)
    store.save("s", "{}", lambda first: kept[first:], 0, None)
    loaded = store.load("s")
    assert loaded is not None and len(loaded[1]) == len(kept)
    read: list[int] = []
    batch_of = KeptRows._batch  # (every read of a batch, `batch_at` and `take`, goes there)

    def noted(self: KeptRows, position: int) -> list[Any]:
        batch = batch_of(self, position)
        read.append(batch[0])
        return batch

    monkeypatch.setattr(KeptRows, "_batch", noted)
    lazy = Deployments.of_rows(loaded[1], [])
    assert lazy.pairs() == {(r[0], r[1]) for r in kept} and read == []
    assert lazy[2 * _CHUNK + 1] == Deployments.of_rows(rows(3 * _CHUNK + 7, seed=3), [])[
        2 * _CHUNK + 1]
    assert read == [2 * _CHUNK]
    assert lazy[-1].gitops_commit == kept[-1][6] and read == [2 * _CHUNK, 3 * _CHUNK]
    assert list(reversed(lazy)) == list(reversed(Deployments.of_rows(
        rows(3 * _CHUNK + 7, seed=3), [])))
    assert sorted(set(read)) == [0, _CHUNK, 2 * _CHUNK, 3 * _CHUNK]
    assert [list(r) for r in lazy.rows(len(kept) - 2)] == rows(3 * _CHUNK + 7, seed=3)[-2:]

    # a batch read is handed over (the rows let go as they are built), not kept twice
    monkeypatch.setattr(KeptRows, "_batch", batch_of)
    with pytest.raises(ValueError):
        loaded[1].batch_at(0)

    with contextlib.closing(sqlite3.connect(store.path)) as db, db:
        db.execute("UPDATE reader_batch SET pairs = replace(pairs, 'pay', 'pax') "
                   "WHERE first = 0")
    assert store.load("s") is None  # the pairs are under the checksum too
    store.save("s", "{}", lambda first: kept[first:], 0, None)
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:
        db.execute("UPDATE reader_batch SET rows = replace(rows, 'pay', 'pax') WHERE first = ?",
                   (_CHUNK,))
    assert store.load("s") is None


def test_batches_of_an_earlier_version_are_read_at_once_and_written_again_in_chunks(
        tmp_path: Path) -> None:
    """A state an earlier version kept (one batch, no checksum) is read at once, as then; the
    first save that adds to it writes all of it again as checked batches (the same generation),
    read lazily from then on."""
    import contextlib
    import sqlite3

    from devex_cli.store import _CHUNK, ReaderStateStore

    kept = rows(_CHUNK + 20, seed=4)
    store = ReaderStateStore(tmp_path)
    store.save("s", "{}", lambda first: kept[first:], 0, None)
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:
        db.execute("DELETE FROM reader_batch")
        db.execute("INSERT INTO reader_batch (name, first, count, rows) VALUES ('s', 0, ?, ?)",
                   (len(kept), json.dumps(kept)))
    old = store.load("s")
    assert old is not None and old[1].pairs is None and list(old[1]) == kept
    more = rows(_CHUNK + 21, seed=4)
    assert store.save("s", "{}", lambda first: more[first:], len(kept), old[2]) == old[2]
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        assert db.execute("SELECT first, count, crc IS NOT NULL FROM reader_batch "
                          "ORDER BY first").fetchall() == [(0, _CHUNK, 1), (_CHUNK, 21, 1)]
    again = store.load("s")
    assert again is not None and again[1].pairs == {(r[0], r[1]) for r in more}
    assert list(again[1]) == more


@pytest.mark.parametrize("text", ['[["pay"', "[" * 100_000 + "]" * 100_000],
                         ids=["not JSON", "too deep"])
def test_a_batch_not_json_though_its_checksum_holds_is_forgotten(tmp_path: Path,
                                                                 text: str) -> None:
    """A batch edited into text that is not JSON (or nests too deep), its checksum made to
    match: found when it is first used, as a batch of rows of another shape is (the one-line
    ValueError), and the state forgotten: the next run reads the history again."""
    import contextlib
    import sqlite3
    import zlib

    from devex_cli.store import _CHUNK, ReaderStateStore

    kept = rows(_CHUNK + 7, seed=5)
    store = ReaderStateStore(tmp_path)
    store.save("s", "{}", lambda first: kept[first:], 0, None)
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:
        (pairs,) = db.execute("SELECT pairs FROM reader_batch WHERE first = ?",
                              (_CHUNK,)).fetchone()
        db.execute("UPDATE reader_batch SET rows = ?, crc = ? WHERE first = ?",
                   (text, zlib.crc32(pairs.encode(), zlib.crc32(text.encode())), _CHUNK))
    loaded = store.load("s")
    assert loaded is not None
    lazy = Deployments.of_rows(loaded[1], [])
    assert lazy[0].service == kept[0][0]
    with pytest.raises(ValueError, match="read again next run"):
        lazy[-1]
    assert store.load("s") is None
