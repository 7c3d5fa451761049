"""DORA performance tiers (elite, high, medium, low) from the four keys.

Thresholds follow the software delivery performance clusters of DORA's 2024 Accelerate State of
DevOps report (the last report to publish the four tiers; the 2025 report describes team
archetypes instead). The 2024 clusters are not monotone in change failure rate (high 20%, medium
10%), so devex orders the published values into a monotone scale: elite <= 5%, high <= 10%,
medium <= 20%, low above. Recovery time for medium (published: under one day, as high) is taken
as under one week, between high and low. docs/metrics.md carries the table.
"""

from __future__ import annotations

from collections.abc import Sequence

TIERS = ("low", "medium", "high", "elite")
DAY = 86400.0
WEEK = 7 * DAY
MONTH = 30 * DAY


def frequency_tier(per_day: float) -> int:
    """Elite: on demand (at least daily); high: at least weekly; medium: at least monthly."""
    if per_day >= 1:
        return 3
    if per_day >= 1 / 7:
        return 2
    if per_day >= 1 / 30:
        return 1
    return 0


def lead_time_tier(seconds: float) -> int:
    """Elite: under a day; high: under a week; medium: under a month."""
    return _below(seconds, (DAY, WEEK, MONTH))


def change_failure_tier(rate: float) -> int:
    """Elite: at most 5%; high: at most 10%; medium: at most 20%."""
    if rate <= 0.05:
        return 3
    if rate <= 0.10:
        return 2
    if rate <= 0.20:
        return 1
    return 0


def recovery_tier(seconds: float) -> int:
    """Elite: under an hour; high: under a day; medium: under a week."""
    return _below(seconds, (3600.0, DAY, WEEK))


def _below(value: float, limits: tuple[float, float, float]) -> int:
    for rank, limit in zip((3, 2, 1), limits, strict=True):
        if value < limit:
            return rank
    return 0


def overall_tier(ranks: Sequence[int]) -> str | None:
    """The median of the keys' tiers (the lower middle one for an even count), or None."""
    if not ranks:
        return None
    ordered = sorted(ranks)
    return TIERS[ordered[(len(ordered) - 1) // 2]]
