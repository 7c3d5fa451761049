"""What devex keeps between collections, as rows of one SQLite file (`devex.sqlite3`).

Three kinds of rows: the deployment records (`RecordStore`: each deployment's change set, the
commits change sets name, the pending ranges), what each GitOps manifest version says
(`ManifestStore`, by blob), and the GitOps reader's states (`ReaderStateStore`: a small body
and the deployments it found, added as new commits are read). Rows get added (a reader state
read again from the start replaces its own): a run writes the rows it computed, in one
transaction, and nothing when it computed nothing (no whole-file rewrite; a killed run leaves the
file as the last finished run wrote it). Manifest facts are read by key, only those a run needs.
Each configuration whose records differ (its ticket rule, projects, workspace, services: the
fingerprint) has its own records, so configurations sharing a cache folder keep theirs side by
side.

Like every cache, the file is an optimisation: a file of another schema version, or one SQLite
cannot read, is replaced by an empty one (one warning), a row of the wrong shape is left out,
and a failure to write only warns. `sqlite3` is imported here, on the first collection, never
by `import devex_cli.cli`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger("devex.store")

SCHEMA_VERSION = 6  # PRAGMA user_version; versions 2 to 5 are upgraded, another is replaced
FILE_NAME = "devex.sqlite3"
_ADDED_IN_3 = """
CREATE TABLE past (configuration INTEGER NOT NULL, name TEXT NOT NULL, cut INTEGER NOT NULL,
                   validity TEXT NOT NULL, body TEXT NOT NULL, unsettled TEXT NOT NULL,
                   PRIMARY KEY (configuration, name, cut)) WITHOUT ROWID;
CREATE TABLE past_arrival (configuration INTEGER NOT NULL, name TEXT NOT NULL,
                           cut INTEGER NOT NULL, sha TEXT NOT NULL, service TEXT NOT NULL,
                           arrivals TEXT,
                           PRIMARY KEY (configuration, name, cut, sha, service)) WITHOUT ROWID;
"""
# Version 4 keeps a reader state's deployments as batches (a JSON array of rows each, one per
# save that added some) instead of a row each: read back in one parse, not row by row; and a
# past's Argo CD times before its cut (a collection plans without waiting for Argo CD).
_ADDED_IN_4 = """
CREATE TABLE reader_batch (name TEXT NOT NULL, first INTEGER NOT NULL, count INTEGER NOT NULL,
                           rows TEXT NOT NULL, PRIMARY KEY (name, first)) WITHOUT ROWID;
ALTER TABLE past ADD COLUMN refined TEXT NOT NULL DEFAULT '{}';
"""
# Version 5 keeps, with a past, where the deployments before its cut are (`past_position`: by
# record key, and by release: service and revision) and what it was taken from (`prefix`): a
# collection that goes on from it reads only the deployments since, not the whole history, to
# plan.
_ADDED_IN_5 = """
ALTER TABLE past ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
CREATE TABLE past_position (configuration INTEGER NOT NULL, name TEXT NOT NULL,
                            cut INTEGER NOT NULL, key TEXT NOT NULL, release TEXT,
                            position INTEGER NOT NULL,
                            PRIMARY KEY (configuration, name, cut, key)) WITHOUT ROWID;
CREATE INDEX past_position_release ON past_position (configuration, name, cut, release,
                                                     position);
"""
# Version 6 keeps with each reader batch the CRC-32 of its text and the (service, environment)
# pairs of its rows: a batch whose checksum holds is the text this devex wrote, parsed only when
# one of its deployments is first used (a collection uses the few after its kept past's cut).
# A state's deployments are written a few hundred a batch (`_CHUNK`).
_ADDED_IN_6 = """
ALTER TABLE reader_batch ADD COLUMN crc INTEGER;
ALTER TABLE reader_batch ADD COLUMN pairs TEXT;
"""
_SCHEMA = _ADDED_IN_3 + _ADDED_IN_4 + _ADDED_IN_5 + _ADDED_IN_6 + """
CREATE TABLE configuration (id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE);
CREATE TABLE record (configuration INTEGER NOT NULL, key TEXT NOT NULL, revision TEXT,
                     shas TEXT, ancestry_rollback INTEGER,
                     PRIMARY KEY (configuration, key)) WITHOUT ROWID;
CREATE TABLE change (configuration INTEGER NOT NULL, sha TEXT NOT NULL, author_time INTEGER,
                     tickets TEXT, merge INTEGER,
                     PRIMARY KEY (configuration, sha)) WITHOUT ROWID;
CREATE TABLE pending_range (configuration INTEGER NOT NULL, key TEXT NOT NULL, shas TEXT,
                            PRIMARY KEY (configuration, key)) WITHOUT ROWID;
CREATE TABLE manifest (version INTEGER NOT NULL, key TEXT NOT NULL, facts TEXT,
                       PRIMARY KEY (version, key)) WITHOUT ROWID;
CREATE TABLE reader_state (name TEXT PRIMARY KEY, body TEXT NOT NULL,
                           deployments INTEGER NOT NULL, generation TEXT NOT NULL) WITHOUT ROWID;
"""
_TABLES_2 = {"configuration", "record", "change", "pending_range", "manifest", "reader_state",
             "reader_deployment"}
_TABLES_3 = _TABLES_2 | {"past", "past_arrival"}
_TABLES_4 = _TABLES_3 - {"reader_deployment"} | {"reader_batch"}
_TABLES = _TABLES_4 | {"past_position"}
_CHUNK = 512  # a reader state's deployments a batch, at most
_BATCHES = 32  # batches shorter than `_CHUNK` at a state's end: past this many, written again
_INSERT = {"record": "INSERT OR REPLACE INTO record VALUES (?, ?, ?, ?, ?)",
           "change": "INSERT OR REPLACE INTO change VALUES (?, ?, ?, ?, ?)",
           "pending_range": "INSERT OR REPLACE INTO pending_range VALUES (?, ?, ?)"}
# a past of a configuration, name and cut, then its rows
_DELETE_PAST = tuple(f"DELETE FROM {table} WHERE configuration = ? AND name = ? AND cut = ?"  # noqa: S608
                     for table in ("past", "past_arrival", "past_position"))
_KEYS_AT_ONCE = 500  # host parameters in one query (SQLite allows 999 on old versions)

T = TypeVar("T")
# records, commits, ranges (RecordStore.load)
Kept = tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]


class _StoreFile:
    """The store file of a cache folder: reads and transactions, a damaged file replaced."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME
        self.written: dict[str, int] = {}  # rows this process wrote, by table (for tests)

    def _read(self, query: Callable[[sqlite3.Connection], T], empty: T) -> T:
        """`query` over the file; `empty` when the file is missing or of another version, or
        damaged (then removed, with a warning)."""
        import sqlite3

        if not self.path.exists():
            return empty
        try:
            with self._connection(write=False) as db:
                if not _usable(db) and not _upgraded(db):
                    log.info("the store %s is of another version: read as empty", self.path)
                    return empty
                return query(db)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):  # locked, say: the file is fine
                log.warning("cannot read the store %s (%s)", self.path, exc)
                return empty
            log.warning("replacing the damaged store %s (%s)", self.path, exc)
            self._remove()
            return empty

    def _write(self, rows: Callable[[sqlite3.Connection], dict[str, int]]) -> bool:
        """`rows` in one transaction (it adds rows and says how many, by table); a file of
        another version, or one SQLite cannot read, is replaced. A failure only warns (and
        returns False)."""
        import sqlite3

        try:
            try:
                written = self._transaction(rows)
            except sqlite3.DatabaseError as exc:  # not a database, malformed: start again
                if not _damaged(exc):
                    raise  # locked, read-only, full: the file is fine
                log.warning("replacing the damaged store %s (%s)", self.path, exc)
                self._remove()
                written = self._transaction(rows)
        except (sqlite3.Error, OSError, OverflowError, UnicodeEncodeError) as exc:
            # the last two: a value SQLite cannot hold (from a damaged file of earlier versions)
            log.warning("cannot write the store %s (%s); the next run computes it again",
                        self.path, exc)
            return False
        for table, count in written.items():
            self.written[table] = self.written.get(table, 0) + count
        return True

    def _transaction(self, rows: Callable[[sqlite3.Connection], dict[str, int]]
                     ) -> dict[str, int]:
        with self._connection(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if not _usable(db) and not _upgraded(db, begun=True):
                    if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                        log.info("replacing the store %s of another version", self.path)
                        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE "
                                                  "type = 'table'").fetchall():
                            db.execute(f'DROP TABLE "{name}"')
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                written = rows(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return written

    @contextlib.contextmanager
    def _connection(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        import sqlite3

        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():  # created private: SQLite's own mode is the umask's
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def _remove(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()


class RecordStore(_StoreFile):
    """The record rows of one configuration."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        super().__init__(folder)
        self.fingerprint = fingerprint

    def load(self) -> Kept:
        """(records, commits, ranges) of this configuration: records and commits as rows by key
        ((key, revision, SHAs separated by spaces, ancestry's verdict 0/1/NULL) and (SHA, author
        time, tickets as `keys_text` wrote them, merge 0/1)), unchecked; ranges as lists of SHAs.
        Empty when the file is missing, unreadable or of another schema."""
        nothing: Kept = ({}, {}, {})
        return self._read(self._load, nothing)

    def load_some(self, records: Collection[str], ranges: Collection[str]) -> Kept:
        """As `load`, only the records and ranges of these keys, and the commits they name."""
        nothing: Kept = ({}, {}, {})

        def query(db: sqlite3.Connection) -> Kept:
            found = db.execute("SELECT id FROM configuration WHERE fingerprint = ?",
                               (self.fingerprint,)).fetchone()
            if found is None:
                return nothing
            rows = {row[0]: row for row in _by_keys(
                db, "SELECT key, revision, shas, ancestry_rollback FROM record "
                    "WHERE configuration = ? AND key IN ({})", found, records)}
            kept_ranges = {key: shas.split() if type(shas) is str else shas
                           for key, shas in _by_keys(
                               db, "SELECT key, shas FROM pending_range "
                                   "WHERE configuration = ? AND key IN ({})", found, ranges)}
            named = {sha for row in rows.values() if type(row[2]) is str
                     for sha in row[2].split()}
            named.update(sha for shas in kept_ranges.values() if type(shas) is list
                         for sha in shas)
            commits = {row[0]: row for row in _by_keys(
                db, "SELECT sha, author_time, tickets, merge FROM change "
                    "WHERE configuration = ? AND sha IN ({})", found, named)}
            return rows, commits, kept_ranges

        return self._read(query, nothing)

    def _load(self, db: sqlite3.Connection) -> Kept:
        found = db.execute("SELECT id FROM configuration WHERE fingerprint = ?",
                           (self.fingerprint,)).fetchone()
        if found is None:
            return {}, {}, {}
        # rows as SQLite gives them, by key, checked where they are used (read by the ten
        # thousand: no conversion here)
        records = {row[0]: row for row in db.execute(
            "SELECT key, revision, shas, ancestry_rollback FROM record WHERE configuration = ?",
            found)}
        commits = {row[0]: row for row in db.execute(
            "SELECT sha, author_time, tickets, merge FROM change WHERE configuration = ?",
            found)}
        ranges = {key: shas.split() if type(shas) is str else shas for key, shas in db.execute(
            "SELECT key, shas FROM pending_range WHERE configuration = ?", found)}
        return records, commits, ranges

    def add(self, records: Iterable[tuple[str, list[Any]]],
            commits: Iterable[tuple[str, list[Any]]],
            ranges: Iterable[tuple[str, list[str]]]) -> None:
        """Add (or replace) rows in one transaction; nothing when there are none."""
        rows: dict[str, list[tuple[Any, ...]]] = {
            "record": [(key, revision, _text(shas), _flag(verdict))
                       for key, (revision, shas, verdict) in records],
            "change": [(sha, when, keys_text(tickets), _flag(merge))
                       for sha, (when, tickets, merge) in commits],
            "pending_range": [(key, _text(shas)) for key, shas in ranges],
        }
        if not any(rows.values()):
            return  # nothing new: the file is not even opened

        def insert(db: sqlite3.Connection) -> dict[str, int]:
            db.execute("INSERT OR IGNORE INTO configuration (fingerprint) VALUES (?)",
                       (self.fingerprint,))
            (configuration,) = db.execute("SELECT id FROM configuration WHERE fingerprint = ?",
                                          (self.fingerprint,)).fetchone()
            for table, values in rows.items():
                if values:
                    db.executemany(_INSERT[table], [(configuration, *v) for v in values])
            return {table: len(values) for table, values in rows.items()}

        self._write(insert)


class PastStore(_StoreFile):
    """What the records before a cut left for the figures after it (`dora.past`), by
    configuration, collection (`name`) and cut: a body and arrival rows. A few cuts are kept (a
    collection over a longer window needs an earlier one)."""

    KEPT = 3  # cuts kept for a configuration and name; the latest ones

    def __init__(self, folder: Path, fingerprint: str, name: str) -> None:
        super().__init__(folder)
        self.fingerprint, self.name = fingerprint, name

    def latest(self, need: int) -> tuple[int, str, str, str, str, str] | None:
        """(cut, validity, body, unsettled, refined, prefix) of the latest cut at or before
        `need` (seconds), or None; unchecked."""

        def query(db: sqlite3.Connection) -> tuple[int, str, str, str, str, str] | None:
            row = db.execute(
                "SELECT p.cut, p.validity, p.body, p.unsettled, p.refined, p.prefix FROM past p "
                "JOIN configuration c ON c.id = p.configuration WHERE c.fingerprint = ? "
                "AND p.name = ? AND p.cut <= ? ORDER BY p.cut DESC LIMIT 1",
                (self.fingerprint, self.name, need)).fetchone()
            return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])

        return self._read(query, None)

    def arrivals(self, cut: int, validity: str,
                 shas: Collection[str]) -> list[tuple[Any, ...]] | None:
        """The arrival rows of these commits (sha, service, arrivals text), unchecked; None
        when the store no longer has the past of `cut` and `validity` (another collection
        replaced it, or it went with older cuts, since `latest` read it)."""

        def rows(db: sqlite3.Connection, configuration: int) -> list[tuple[Any, ...]]:
            return list(_by_keys(
                db, "SELECT sha, service, arrivals FROM past_arrival WHERE "
                    "configuration = ? AND name = ? AND cut = ? AND sha IN ({})",
                (configuration, self.name, cut), shas))

        return self._read(lambda db: self._of_past(db, cut, validity, rows), None)

    def positions(self, cut: int, validity: str, prefix: str, keys: Collection[str],
                  releases: Collection[str]
                  ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int] | None:
        """Where deployments before the cut are: (key, position) of these record keys, and
        (release, last position) of these releases ("service revision"), unchecked, and how
        many positions the past has; None as `arrivals`, or when the past no longer has this
        `prefix` (another collection kept it again meanwhile). A few queries, whatever the
        number of keys (each one lets another thread of the process run meanwhile)."""

        def rows(db: sqlite3.Connection, configuration: int
                 ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
            ours = (configuration, self.name, cut)
            by_key = list(_by_keys(
                db, "SELECT key, position FROM past_position WHERE configuration = ? AND "
                    "name = ? AND cut = ? AND key IN ({})", ours, keys))
            last = list(_by_keys(
                db, "SELECT release, max(position) FROM past_position WHERE configuration = ? "
                    "AND name = ? AND cut = ? AND release IN ({}) GROUP BY release",
                ours, releases))
            (count,) = db.execute("SELECT count(*) FROM past_position WHERE configuration = ? "
                                  "AND name = ? AND cut = ?", ours).fetchone()
            return by_key, last, count

        return self._read(lambda db: self._of_past(db, cut, validity, rows, prefix), None)

    def _of_past(self, db: sqlite3.Connection, cut: int, validity: str,
                 rows: Callable[[sqlite3.Connection, int], T],
                 prefix: str | None = None) -> T | None:
        """`rows(db, configuration)` in one snapshot with the past of `cut` and `validity`
        (and `prefix`, when given) checked still there; None when it is not."""
        db.execute("BEGIN")
        try:
            found = db.execute(
                "SELECT p.configuration, p.prefix FROM past p JOIN configuration c "
                "ON c.id = p.configuration WHERE c.fingerprint = ? AND p.name = ? "
                "AND p.cut = ? AND p.validity = ?",
                (self.fingerprint, self.name, cut, validity)).fetchone()
            if found is None or (prefix is not None and found[1] != prefix):
                return None
            return rows(db, found[0])
        finally:
            db.execute("COMMIT")

    def save(self, cut: int, validity: str, body: str,
             rows: Sequence[tuple[str, str, str]], unsettled: str, refined: str,
             prefix: str = "", positions: Sequence[tuple[str, str | None, int]] = ()
             ) -> None:
        """Keep a past (replacing one of the same cut); only the latest `KEPT` cuts stay.
        `unsettled` (the records before the cut that may still change), `refined` (Argo CD's
        times before it) and `prefix` (what it was taken from), as the caller writes them (it
        checks them when it reads the past); `positions`: (key, release, position) of the
        deployments before the cut."""

        def write(db: sqlite3.Connection) -> dict[str, int]:
            db.execute("INSERT OR IGNORE INTO configuration (fingerprint) VALUES (?)",
                       (self.fingerprint,))
            (configuration,) = db.execute("SELECT id FROM configuration WHERE fingerprint = ?",
                                          (self.fingerprint,)).fetchone()
            ours = (configuration, self.name)
            for statement in _DELETE_PAST[1:]:  # its rows (of an earlier past of this cut)
                db.execute(statement, (*ours, cut))
            db.execute("INSERT OR REPLACE INTO past VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (*ours, cut, validity, body, unsettled, refined, prefix))
            db.executemany("INSERT INTO past_arrival VALUES (?, ?, ?, ?, ?, ?)",
                           [(*ours, cut, *row) for row in rows])
            db.executemany("INSERT INTO past_position VALUES (?, ?, ?, ?, ?, ?)",
                           [(*ours, cut, *row) for row in positions])
            old = [c for (c,) in db.execute(
                "SELECT cut FROM past WHERE configuration = ? AND name = ? ORDER BY cut DESC",
                ours).fetchall()[self.KEPT:]]
            for stale in old:
                for statement in _DELETE_PAST:
                    db.execute(statement, (*ours, stale))
            return {"past": 1, "past_arrival": len(rows), "past_position": len(positions)}

        self._write(write)


def _by_keys(db: sqlite3.Connection, sql: str, head: Sequence[Any],
             keys: Collection[str]) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql` (its `IN ({})` filled with marks) for `keys`, as many keys a query as
    this SQLite takes (up to 10,000), in no particular order; the cursors' rows stream to the
    caller (no Python frame a row, no list of them all). The keys are given sorted: SQLite
    builds its list of them and walks the table's index in that order, faster for thousands
    of keys than in any order."""
    import sqlite3

    at_once = max(1, min(10_000, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)) - len(head))
    wanted = sorted(keys)
    return itertools.chain.from_iterable(
        db.execute(sql.format(", ".join("?" * len(part))), (*head, *part))
        for part in (wanted[n:n + at_once] for n in range(0, len(wanted), at_once)))


class ManifestStore(_StoreFile):
    """What each manifest version says (JSON by key), for one version of the parser."""

    def __init__(self, folder: Path, version: int) -> None:
        super().__init__(folder)
        self.version = version
        self.read = 0  # keys asked for (for tests: a run reads what it needs, not all)

    def get(self, keys: Collection[str]) -> dict[str, Any]:
        """The kept facts of these keys (decoded JSON, unchecked); those not kept are left out."""
        wanted = sorted(keys)
        self.read += len(wanted)
        if not wanted:
            return {}

        def query(db: sqlite3.Connection) -> dict[str, Any]:
            found = {}
            for start in range(0, len(wanted), _KEYS_AT_ONCE):
                part = wanted[start:start + _KEYS_AT_ONCE]
                marks = ", ".join("?" * len(part))
                for key, text in db.execute(
                        f"SELECT key, facts FROM manifest WHERE version = ? AND key IN ({marks})",  # noqa: S608
                        (self.version, *part)):
                    with contextlib.suppress(TypeError, ValueError):
                        found[key] = json.loads(text)
            return found

        return self._read(query, {})

    def add(self, facts: dict[str, Any]) -> None:
        """Keep these facts (JSON-encodable, by key); nothing when there are none."""
        if not facts:
            return
        rows = [(self.version, key, json.dumps(value, separators=(",", ":")))
                for key, value in facts.items()]

        def insert(db: sqlite3.Connection) -> dict[str, int]:
            db.executemany("INSERT OR REPLACE INTO manifest VALUES (?, ?, ?)", rows)
            return {"manifest": len(rows)}

        self._write(insert)


class ReaderStateStore(_StoreFile):
    """The GitOps reader's states by name: each one's body (JSON text: all but its deployments)
    and its deployments in batches (a JSON array of at most `_CHUNK` rows each, with its
    checksum and pairs). A state only ever appends deployments, so a run that read new commits
    adds batches of theirs and replaces the small body (past `_BATCHES` short batches at the
    end, those are written again as full ones); one that read the history again replaces them
    all (a new generation: a batch is added only to the generation it follows, never to one
    another process wrote meanwhile)."""

    def load(self, name: str) -> tuple[str, KeptRows, str] | None:
        """(body, deployment rows in order: service, environment, version, revision, previous
        version and revision, GitOps commit, time, manifest, and the generation), unchecked
        but for the batches joining up and their checksums; None when not kept. A batch whose
        checksum holds is parsed when one of its rows is first asked for (`KeptRows`)."""

        def query(db: sqlite3.Connection) -> tuple[str, KeptRows, str] | None:
            db.execute("BEGIN")  # one snapshot: the body and the batches of one generation
            try:
                found = db.execute("SELECT body, deployments, generation FROM reader_state "
                                   "WHERE name = ?", (name,)).fetchone()
                if found is None:
                    return None
                body, count, generation = found
                if type(count) is not int or count < 0:
                    return None  # not a count of deployments: read as not kept
                batches = db.execute(
                    "SELECT first, count, rows, crc, pairs FROM reader_batch WHERE name = ? "
                    "AND first < ? ORDER BY first", (name, count)).fetchall()
            finally:
                db.execute("COMMIT")
            kept = KeptRows.of(batches, count, lambda: self._forget(name, generation))
            return None if kept is None else (body, kept, generation)

        return self._read(query, None)

    def _forget(self, name: str, generation: str) -> None:
        """Remove a state (of this generation: not one another run wrote since) whose rows
        are not what was written: the next read starts again."""

        def remove(db: sqlite3.Connection) -> dict[str, int]:
            found = db.execute("SELECT generation FROM reader_state WHERE name = ?",
                               (name,)).fetchone()
            if found is None or found[0] != generation:
                return {}
            db.execute("DELETE FROM reader_batch WHERE name = ?", (name,))
            db.execute("DELETE FROM reader_state WHERE name = ?", (name,))
            return {}

        log.warning("the GitOps reader's kept state %s is damaged; it is read again next run",
                    name)
        self._write(remove)

    def save(self, name: str, body: str, rows: Callable[[int], Sequence[Sequence[Any]]],
             start: int, generation: str | None) -> str | None:
        """The state's body and its deployment rows (`rows(n)`: from position n on), in one
        transaction: those from `start` on (from earlier when `_rewritten_from` says so), in
        batches of at most `_CHUNK`, when the store still has `generation` (the one loaded)
        and its batches end at `start`, else all of them, as a new generation. Returns the
        generation the store has now, None when it could not be written."""
        wrote: list[str] = []

        def write(db: sqlite3.Connection) -> dict[str, int]:
            found = db.execute("SELECT generation FROM reader_state WHERE name = ?",
                               (name,)).fetchone()
            end, batches = db.execute("SELECT coalesce(max(first + count), 0), count(*) "
                                      "FROM reader_batch WHERE name = ?", (name,)).fetchone()
            first, now = start, generation or ""
            # another generation, or another run added to this one meanwhile: this run's rows
            # replace them, as a new generation (none follows both)
            if generation is None or found is None or found[0] != generation or end != start:
                first, now = 0, os.urandom(8).hex()
            elif batches:
                first = _rewritten_from(db, name, start)
            new = rows(first)
            db.execute("DELETE FROM reader_batch WHERE name = ? AND first >= ?", (name, first))
            db.executemany("INSERT INTO reader_batch (name, first, count, rows, crc, pairs) "
                           "VALUES (?, ?, ?, ?, ?, ?)", _batches(name, first, new))
            db.execute("INSERT OR REPLACE INTO reader_state VALUES (?, ?, ?, ?)",
                       (name, body, first + len(new), now))
            wrote[:] = [now]
            return {"reader_batch": len(new), "reader_state": 1}

        return wrote[0] if self._write(write) and wrote else None


def _rewritten_from(db: sqlite3.Connection, name: str, start: int) -> int:
    """Where a save that adds rows at `start` writes from: `start`, unless the state has batches
    an earlier version wrote (no checksum: all are written again, as this one writes them) or
    more than `_BATCHES` short ones at its end (a collector run every minute: they are written
    again as full ones)."""
    unchecked, full_end = db.execute(
        "SELECT count(crc IS NULL OR pairs IS NULL OR NULL), "
        "coalesce(max(CASE WHEN count >= ? THEN first + count END), 0) "
        "FROM reader_batch WHERE name = ?", (_CHUNK, name)).fetchone()
    if unchecked:
        return 0
    (short,) = db.execute("SELECT count(*) FROM reader_batch WHERE name = ? AND first >= ?",
                          (name, full_end)).fetchone()
    return full_end if short >= _BATCHES else start


def _batches(name: str, first: int, rows: Sequence[Sequence[Any]]
             ) -> Iterator[tuple[str, int, int, str, int, str]]:
    """`rows` (from position `first`) as batch rows of at most `_CHUNK` each: the JSON text,
    the CRC-32 of it and of its rows' (service, environment) pairs, and those pairs."""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        text = json.dumps(chunk, separators=(",", ":"))
        pairs = json.dumps(sorted({(row[0], row[1]) for row in chunk}), separators=(",", ":"))
        yield name, first + start, len(chunk), text, _crc(text, pairs), pairs


def _crc(text: str, pairs: str) -> int:
    """The CRC-32 of a batch: of its rows' text, then of its pairs."""
    import zlib

    return zlib.crc32(pairs.encode(), zlib.crc32(text.encode()))


_TAKEN = object()  # a batch whose rows `KeptRows.take` handed over


class KeptRows(Sequence[list[Any]]):
    """A reader state's deployment rows as the store keeps them (`ReaderStateStore.load`): a
    batch whose checksum held is the text this devex wrote, parsed when one of its rows is first
    asked for (`batch_at`); a batch an earlier version wrote is parsed at once. `pairs`: the
    (service, environment) pairs of every row, known without parsing (None when a batch was
    kept without them)."""

    def __init__(self, count: int, batches: list[list[Any]],
                 pairs: set[tuple[str, str]] | None,
                 forget: Callable[[], None] = lambda: None) -> None:
        self._count = count
        self._forget = forget
        self._batches = batches  # [first, count, text, or the rows once parsed]
        self._firsts = [batch[0] for batch in batches]
        self.pairs = pairs
        self._parsing = threading.Lock()

    @classmethod
    def of(cls, batches: Iterable[tuple[Any, ...]], count: int,
           forget: Callable[[], None] = lambda: None) -> KeptRows | None:
        """The rows of these batch rows (first, count, text, CRC-32, pairs) up to `count`; None
        when they do not join up, a checksum fails or a text is not what was written.
        `forget` removes them from the store (`damaged`)."""

        kept: list[list[Any]] = []
        pairs: set[tuple[str, str]] | None = set()
        end = 0
        for first, size, text, crc, batch_pairs in batches:
            if first != end or type(size) is not int or size < 1 or type(text) is not str:
                return None  # a batch lost, or not as written: read as not kept
            if crc is not None and batch_pairs is not None and first + size <= count:
                found = _pairs(batch_pairs)
                if type(batch_pairs) is not str or _crc(text, batch_pairs) != crc \
                        or found is None:
                    return None
                if pairs is not None:
                    pairs |= found
                kept.append([first, size, text])
            else:  # an earlier version's (or one past the state's end): parsed now
                try:
                    rows = json.loads(text)
                except (TypeError, ValueError, RecursionError):  # the last: too deep
                    return None
                if type(rows) is not list or len(rows) != size:
                    return None
                kept.append([first, min(size, count - first), rows[:count - first]])
                pairs = None
            end = first + kept[-1][1]
        return cls(count, kept, pairs, forget) if end >= count else None

    def batch_at(self, position: int) -> tuple[int, list[Any]]:
        """The batch holding `position`: its first position and its rows (parsed now if not
        yet). Raises ValueError for a text that is not rows (edited, checksum and all: the
        state is forgotten, `damaged`)."""
        batch = self._batch(position)
        return batch[0], batch[2]

    def _batch(self, position: int) -> list[Any]:
        """`batch_at`'s batch itself: [first, count, rows]."""
        batch = self._batches[bisect_right(self._firsts, position) - 1]
        if batch[2] is _TAKEN:
            raise ValueError("a batch of deployments asked for after it was taken")
        if type(batch[2]) is str:
            with self._parsing:
                if type(batch[2]) is str:
                    try:
                        rows = json.loads(batch[2])
                    except (ValueError, RecursionError):  # the last: too deep
                        rows = None
                    if type(rows) is not list or len(rows) != batch[1]:
                        self.damaged()
                        raise ValueError("a kept batch of deployments is not rows")
                    batch[2] = rows
        return batch

    def take(self, position: int) -> tuple[int, list[Any]]:
        """As `batch_at`, the batch then forgotten here: the caller holds its rows from now on
        (they are let go as it builds them); asking for it again raises ValueError."""
        batch = self._batch(position)
        first, rows = batch[0], batch[2]
        batch[2] = _TAKEN
        return first, rows

    def damaged(self) -> None:
        """A batch is not what was written although its checksum held (edited, checksum and
        all): the state is removed from the store, so that the next read starts again."""
        self._forget()

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> list[Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[Any]]: ...

    def __getitem__(self, index: int | slice) -> list[Any] | list[list[Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError("row position out of range")
        index %= self._count
        first, rows = self.batch_at(index)
        return rows[index - first]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[list[Any]]:
        for first, _, _ in self._batches:
            yield from self.batch_at(first)[1]


def _pairs(text: object) -> set[tuple[str, str]] | None:
    """The (service, environment) pairs `_batches` wrote; None for a text it cannot have."""
    try:
        found = json.loads(text) if type(text) is str else None
    except (ValueError, RecursionError):
        return None
    if type(found) is not list or not all(
            type(pair) is list and len(pair) == 2 and type(pair[0]) is type(pair[1]) is str
            for pair in found):
        return None
    return {(service, environment) for service, environment in found}


# Errors of a sound file that cannot be used now (another process writes it, a full disk)
_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_FULL", "SQLITE_PERM",
              "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_NOMEM", "SQLITE_INTERRUPT")


def _damaged(exc: Exception) -> bool:
    """Whether an SQLite error says the file itself is bad (not a database, malformed, of
    another shape), as opposed to being in use or the disk being full."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return not name.startswith(_TRANSIENT)


def _upgraded(db: sqlite3.Connection, *, begun: bool = False) -> bool:
    """A file of schema version 2 to 5 upgraded to this one, its rows kept (the tables and
    columns later versions added are created; version 2 and 3's reader deployment rows become
    one batch per state, a state with rows lost is dropped: read again); False for any other
    file. `begun`: a transaction is open already (else the file is looked at again once locked:
    another process may have upgraded it meanwhile, and it is usable then)."""
    version = _upgradable(db)
    if version is None:
        return not begun and _usable(db)
    if not begun:
        db.execute("BEGIN IMMEDIATE")
        version = _upgradable(db)
        if version is None:
            db.execute("ROLLBACK")
            return _usable(db)
    added = {2: _ADDED_IN_3 + _ADDED_IN_4 + _ADDED_IN_5, 3: _ADDED_IN_4 + _ADDED_IN_5,
             4: _ADDED_IN_5}.get(version, "") + _ADDED_IN_6
    try:
        for statement in added.split(";"):
            if statement.strip():
                db.execute(statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")
                           .replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
        if version < 4:
            _reader_rows_as_batches(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if not begun:
            db.execute("COMMIT")
    except BaseException:
        if not begun and db.in_transaction:
            db.execute("ROLLBACK")
        raise
    log.info("the store %s upgraded to version %d", FILE_NAME, SCHEMA_VERSION)
    return True


def _reader_rows_as_batches(db: sqlite3.Connection) -> None:
    """Version 2 and 3's reader deployments (a row each) as one batch per state."""
    for name, count in db.execute("SELECT name, deployments FROM reader_state").fetchall():
        rows = db.execute(
            "SELECT service, environment, version, revision, previous_version, "
            "previous_revision, gitops_commit, time, manifest FROM reader_deployment "
            "WHERE name = ? AND position < ? ORDER BY position", (name, count)).fetchall()
        if len(rows) != count:
            db.execute("DELETE FROM reader_state WHERE name = ?", (name,))
        elif rows:
            db.execute("INSERT INTO reader_batch (name, first, count, rows) VALUES (?, 0, ?, ?)",
                       (name, count, json.dumps(rows, separators=(",", ":"))))
    db.execute("DROP TABLE reader_deployment")


def _upgradable(db: sqlite3.Connection) -> int | None:
    """The file's schema version when it is 2 to 5 and the file has its tables."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    tables = {2: _TABLES_2, 3: _TABLES_3, 4: _TABLES_4, 5: _TABLES}.get(version)
    return version if tables is not None and names >= tables else None


def _usable(db: sqlite3.Connection) -> bool:
    """The file has this schema version and its tables."""
    if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
        return False
    names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return names >= _TABLES


def _text(items: list[str] | None) -> str | None:
    """A list of SHAs (no spaces in them) as one column; None stays NULL."""
    return None if items is None else " ".join(items)


def keys_text(keys: list[str]) -> str:
    """Ticket keys as one column: separated by spaces, or as a JSON array when a key would not
    come back from that (a custom ticket pattern's whole match may hold a space, or start with
    `[`, as `[PAY-12]` does)."""
    if any(key.split() != [key] or key.startswith("[") for key in keys):
        return json.dumps(keys)
    return " ".join(keys)


def text_keys(text: str) -> list[str] | None:
    """The ticket keys `keys_text` wrote; None for a column it cannot have written."""
    if not text.startswith("["):
        return text.split()
    try:
        keys = json.loads(text)
    except ValueError:
        return None
    return keys if type(keys) is list and all(type(key) is str for key in keys) else None


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)
