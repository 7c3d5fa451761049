"""Times as devex shows them: RFC 3339 in UTC, short human ages, durations from the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from devex_cli.errors import UsageError

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def rfc3339(moment: datetime) -> str:
    """`2026-11-25T09:00:00Z` (isoformat: a collection writes thousands, strftime is slower)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")[:-6] + "Z"


def age(delta: timedelta) -> str:
    """A short human age: 45s, 12m, 5h, 3d, 9w (weeks from two weeks on)."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "w" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(text: str, *, option: str) -> timedelta:
    """`90d`, `12w`, `5m`, `30s`, `6h` as a timedelta; anything else is a usage error."""
    found = _DURATION.match(text.strip())
    if not found or int(found.group(1)) == 0:
        raise UsageError(f"{option} {text!r} is not a duration", hint="use e.g. 90d, 12w, 6h, 5m")
    try:
        return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
    except OverflowError:  # past timedelta's 999,999,999 days
        raise UsageError(f"{option} {text!r} is too long a duration") from None


def parse_moment(text: str, *, option: str, now: datetime) -> datetime:
    """A date (`2026-09-01`, UTC midnight), an RFC 3339 time, or a duration back from `now`."""
    if _DURATION.match(text.strip()):
        try:
            return now - parse_duration(text, option=option)
        except OverflowError:  # before year 1
            raise UsageError(f"{option} {text!r} goes back before year 1") from None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is neither a date nor a duration",
                         hint="use e.g. 2026-09-01 or 90d") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
