"""A small persistent cache of facts, as JSON files only the user can read.

A cache file is `{"version": N, "content": {...}}`. Devex reads back only what it can use: a file
of another version, or whose content has the wrong shape, reads as empty (a mapping of independent
entries: without its damaged entries) and is replaced on the next save. A cache is an
optimisation: no state of its file fails a command, and no failure to write it either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from itertools import product
from operator import itemgetter
from pathlib import Path
from typing import Any

log = logging.getLogger("devex.cache")

# What a cache's content must look like: the usable part of it, or None when nothing is.
Shape = Callable[[dict[str, Any]], dict[str, Any] | None]
# Whether one JSON value has the expected shape.
Check = Callable[[Any], bool]


class JsonCache:
    """One JSON document at `root/name.json`. A missing, unreadable, other-version or
    wrongly-shaped file is an empty cache."""

    def __init__(self, root: Path, name: str, *, version: int, shape: Shape,
                 grows_only: bool = True) -> None:
        self.path = root / f"{name}.json"
        self._version = version
        self._shape = shape
        # A cache that only grows is not written back unchanged: what load() read is noted.
        # One whose content changes (`grows_only=False`) is always written when saved.
        self._grows_only = grows_only
        self._loaded: str | None = None

    def load(self) -> dict[str, Any]:
        self._loaded = None
        try:
            document = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable cache %s (%s)", self.path, exc)
            return {}
        content = (document.get("content")
                   if isinstance(document, dict) and document.get("version") == self._version
                   else None)
        usable = self._shape(content) if isinstance(content, dict) else None
        if usable is None or content is None or len(usable) != len(content):
            # another version, or damaged: not noted as loaded, so the next save replaces it
            log.info("the cache %s is of another version or damaged: %s", self.path,
                     "partly kept" if usable else "read as empty")
            return usable or {}
        if self._grows_only:
            self._loaded = _fingerprint(usable)
        return usable

    def save(self, data: dict[str, Any]) -> None:
        """Write atomically with mode 0600 in a 0700 folder, unless it only grows and nothing
        changed since load(). A failure only warns and leaves no temporary file behind."""
        if self._loaded is not None and _fingerprint(data) == self._loaded:
            return
        # dumps, not dump: only a one-shot encoding runs in C (dump streams through the
        # pure-Python encoder, some 30 times slower on a large cache)
        text = json.dumps({"version": self._version, "content": data}, separators=(",", ":"))
        temporary: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp made it 0600
                out.write(text)
            Path(temporary).replace(self.path)
            temporary = None
        except OSError as exc:
            log.warning("cannot write the cache %s (%s); the next run computes it again",
                        self.path, exc)
        finally:
            if temporary is not None:  # a full disk must not stay full of half-written caches
                with contextlib.suppress(OSError):
                    Path(temporary).unlink()


def private_folder(path: Path) -> Path:
    """The folder, created mode 0700, or tightened to 0700 when it is the user's and others
    may read it. A failure only warns: the caches in it then fail to write, and warn too."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = path.stat()
        if info.st_mode & 0o777 != 0o700 and info.st_uid == os.getuid():
            path.chmod(0o700)  # whatever the umask made of it, or whoever made it looser
    except OSError as exc:
        if path not in _warned:  # asked for on every use of the cache: said once
            _warned.add(path)
            log.warning("cannot make the cache folder %s private (%s)", path, exc)
    return path


_warned: set[Path] = set()


# Shapes ---------------------------------------------------------------------------------------


def entries(check: Check) -> Shape:
    """A mapping of independent entries: an entry that fails `check` is left out."""
    def shape(content: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in content.items() if check(value)}

    return shape


def fields(**checks: Check) -> Shape:
    """A record of named parts, every one present and passing its check; else unusable. Other
    keys are left out."""
    def shape(content: dict[str, Any]) -> dict[str, Any] | None:
        try:
            usable = {name: content[name] for name in checks}
        except KeyError:
            return None
        return usable if all(check(usable[name]) for name, check in checks.items()) else None

    return shape


class Kinds:
    """A check passed by a value of one of these exact JSON types (`True` is no integer)."""

    def __init__(self, *kinds: type) -> None:
        self.kinds = frozenset(kinds)

    def __call__(self, value: Any) -> bool:
        return type(value) in self.kinds


TEXT = Kinds(str)
INTEGER = Kinds(int)
BOOLEAN = Kinds(bool)
LIST = Kinds(list)
MAPPING = Kinds(dict)


def moment(value: Any) -> bool:
    """An RFC 3339 time with its offset (`2026-09-06T12:30:00Z`): a time without one cannot be
    compared with the others."""
    if type(value) is not str:
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def optional(check: Check) -> Check:
    """`check`, or null."""
    if isinstance(check, Kinds):
        return Kinds(*check.kinds, type(None))
    return lambda value: value is None or check(value)


def one_of(*checks: Check) -> Check:
    return lambda value: any(check(value) for check in checks)


def list_of(check: Check) -> Check:
    if isinstance(check, Kinds):
        kinds = check.kinds
        return lambda value: type(value) is list and kinds.issuperset(map(type, value))
    return lambda value: type(value) is list and all(map(check, value))


def map_of(check: Check) -> Check:
    """A JSON object whose values pass `check`."""
    if isinstance(check, Kinds):
        kinds = check.kinds
        return lambda value: type(value) is dict and kinds.issuperset(map(type, value.values()))
    return lambda value: type(value) is dict and all(map(check, value.values()))


def keyed(**checks: Check) -> Check:
    """A JSON object with these keys passing their checks (others are ignored)."""
    def check(value: Any) -> bool:
        return type(value) is dict and all(
            name in value and part(value[name]) for name, part in checks.items())

    return check


def row(*checks: Check) -> Check:
    """A list of exactly these items. Built for rows read by the thousand: the items checked by
    type are checked in one set lookup of their types."""
    typed = [(n, check.kinds) for n, check in enumerate(checks) if isinstance(check, Kinds)]
    others = [(n, check) for n, check in enumerate(checks) if not isinstance(check, Kinds)]
    allowed = set(product(*(kinds for _, kinds in typed)))
    positions = [n for n, _ in typed]
    size = len(checks)
    pick = itemgetter(*positions) if len(positions) > 1 else None

    # the common rows, read by the thousand: inline
    if pick is not None and not others:
        return lambda value: (type(value) is list and len(value) == size
                              and tuple(map(type, pick(value))) in allowed)
    if pick is not None and len(others) == 1:
        (at, part), = others
        return lambda value: (type(value) is list and len(value) == size
                              and tuple(map(type, pick(value))) in allowed and part(value[at]))

    def check(value: Any) -> bool:
        if type(value) is not list or len(value) != size:
            return False
        found = (tuple(map(type, pick(value))) if pick is not None
                 else tuple(type(value[n]) for n in positions))
        return found in allowed and all(part(value[n]) for n, part in others)

    return check


def _fingerprint(data: dict[str, Any]) -> str:
    """A cheap identity of the cache's content: its keys and the sizes below them. The caches
    only ever grow (immutable facts are added), so an unchanged shape is unchanged content."""
    parts = []
    for key, value in data.items():
        if isinstance(value, dict):
            parts.append(f"{key}:{len(value)}:" + ",".join(
                f"{k}={len(v) if isinstance(v, dict | list) else 1}" for k, v in value.items()))
        else:
            parts.append(f"{key}:{len(value) if isinstance(value, list) else 1}")
    return "|".join(parts)
