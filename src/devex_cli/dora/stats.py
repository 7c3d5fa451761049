"""Summary statistics as the contract defines them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Median, mean and p90 of a set of seconds; all None when there is no value."""

    median: float | None
    mean: float | None
    p90: float | None
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls(None, None, None, 0)
        ordered = sorted(values)
        return cls(median(ordered), sum(ordered) / len(ordered), percentile(ordered, 0.9),
                   len(ordered))


def median(ordered: Sequence[float]) -> float:
    """The usual median: the middle value, or the mean of the two middle values."""
    n = len(ordered)
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, Excel's PERCENTILE.INC)."""
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
