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

    def __init__(self, root: Path, name: str) -> None:
        self.path = root / f"{name}.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable cache %s (%s)", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        """Write atomically with mode 0600 in a 0700 folder; a failure only warns."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, separators=(",", ":"))
            Path(temporary).replace(self.path)  # mkstemp made it 0600
        except OSError as exc:
            log.warning("cannot write the cache %s (%s); the next run fetches again",
                        self.path, exc)
