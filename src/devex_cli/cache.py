"""A small persistent cache of immutable facts, as JSON files only the user can read."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("devex.cache")


class JsonCache:
    """One JSON document at `root/name.json`. A missing or unreadable file is an empty cache."""

    def __init__(self, root: Path, name: str, *, grows_only: bool = True) -> None:
        self.path = root / f"{name}.json"
        # A cache that only grows is not written back unchanged: what load() read is noted.
        # One whose content changes (`grows_only=False`) is always written when saved.
        self._grows_only = grows_only
        self._loaded: str | None = None

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable cache %s (%s)", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        if self._grows_only:
            self._loaded = _fingerprint(data)
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Write atomically with mode 0600 in a 0700 folder, unless it only grows and nothing
        changed since load(); a failure only warns."""
        if self._loaded is not None and _fingerprint(data) == self._loaded:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            # dumps, not dump: only a one-shot encoding runs in C (dump streams through the
            # pure-Python encoder, some 30 times slower on a large cache)
            text = json.dumps(data, separators=(",", ":"))
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            Path(temporary).replace(self.path)  # mkstemp made it 0600
        except OSError as exc:
            log.warning("cannot write the cache %s (%s); the next run fetches again",
                        self.path, exc)


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
