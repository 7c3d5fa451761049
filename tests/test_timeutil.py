"""Times as devex writes them (timeutil)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from devex_cli.timeutil import rfc3339


def test_rfc3339_is_utc_to_the_second() -> None:
    assert rfc3339(datetime(2026, 11, 25, 9, 0, tzinfo=UTC)) == "2026-11-25T09:00:00Z"
    # another offset is written in UTC; the fraction of a second is left out, not rounded
    east = timezone(timedelta(hours=5, minutes=30))
    assert rfc3339(datetime(2026, 1, 1, 2, 3, 4, 999_999, tzinfo=east)) == "2025-12-31T20:33:04Z"
    assert rfc3339(datetime(1970, 1, 1, tzinfo=UTC)) == "1970-01-01T00:00:00Z"


def test_rfc3339_writes_four_digits_of_year() -> None:
    """A window reaching back past year 1000 (`--since 400000d`) as RFC 3339 has it: four
    digits (strftime, used before, wrote `931-...`)."""
    assert rfc3339(datetime(931, 6, 7, 8, 9, 10, tzinfo=UTC)) == "0931-06-07T08:09:10Z"
