"""A short history of one figure (`History`) drawn as a sparkline of block characters: the
meters' trend of response latency, real-time factor and lead."""
from __future__ import annotations

import collections
import math

BLOCKS = "▁▂▃▄▅▆▇█"
HISTORY_SAMPLES = 240  # the most readings kept: wider than any sparkline drawn


class History:
    """The last `size` readings of a figure (NaN and infinities are kept as gaps)."""

    def __init__(self, size: int = HISTORY_SAMPLES) -> None:
        self.values: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(value)

    def clear(self) -> None:
        self.values.clear()

    def sparkline(self, width: int, *, low: float | None = None, high: float | None = None) -> str:
        """The last `width` readings, one block each, scaled between `low` and `high` (default:
        the readings' own least and greatest); a gap is a space, and the line is padded on the left."""
        return sparkline(list(self.values)[-width:] if width > 0 else [], width, low=low, high=high)


def sparkline(values: list[float], width: int, *, low: float | None = None, high: float | None = None) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * max(width, 0)
    lo = min(finite) if low is None else low
    hi = max(finite) if high is None else high
    span = hi - lo
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
            continue
        share = 0.5 if span <= 0 else (min(max(v, lo), hi) - lo) / span
        out.append(BLOCKS[round(share * (len(BLOCKS) - 1))])
    return "".join(out).rjust(width)
