"""Summary statistics as the contract defines them.

`median_positions` and `percentile_position` say which of the sorted values a median and a
percentile read; `median` and `percentile` compute from them, so `devex explain` can show the
same arithmetic in the open.
"""

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


def median_positions(count: int) -> tuple[int, ...]:
    """The 0-based positions of the sorted values a median of `count` values reads: the middle
    one, or the two middle ones (their mean) for an even count."""
    middle = count // 2
    return (middle,) if count % 2 else (middle - 1, middle)


def median(ordered: Sequence[float]) -> float:
    """The usual median: the middle value, or the mean of the two middle values."""
    positions = median_positions(len(ordered))
    return (float(ordered[positions[0]]) if len(positions) == 1
            else (ordered[positions[0]] + ordered[positions[1]]) / 2)


def percentile_position(count: int, q: float) -> tuple[float, int, int]:
    """Where the `q` percentile of `count` sorted values lies: the 0-based position
    `(count - 1) * q` and the two positions it falls between."""
    position = (count - 1) * q
    return position, math.floor(position), math.ceil(position)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, Excel's PERCENTILE.INC)."""
    position, low, high = percentile_position(len(ordered), q)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
