"""Small statistics for benchmark runs: medians, percentiles, ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median, or 0.0 for no values."""
    return float(statistics.median(values)) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually observed."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, rounded; None when the baseline is missing or zero."""
    return round(value / baseline, 2) if baseline else None


def round_all(values: dict, digits: int = 2) -> dict:
    """A copy with every float rounded, for reports."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in values.items()}
