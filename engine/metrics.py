"""Small, thread-safe measurement helpers: latency samples with percentiles, and counters."""
from __future__ import annotations

import math
import threading
from collections import deque


class LatencyTracker:
    """Keeps the most recent `capacity` samples (ns) and the all-time max and count."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._samples: deque[int] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.count = 0
        self.max_ns = 0

    def add(self, value_ns: int) -> None:
        with self._lock:
            self._samples.append(value_ns)
            self.count += 1
            if value_ns > self.max_ns:
                self.max_ns = value_ns

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self.count = 0
            self.max_ns = 0

    def samples(self) -> list[int]:
        with self._lock:
            return list(self._samples)

    def summary_ms(self, prefix: str) -> dict[str, float | int]:
        """p50/p99/max in milliseconds over the kept samples, keyed `{prefix}_ms_p50` etc."""
        values = sorted(self.samples())
        return {
            f"{prefix}_ms_p50": _percentile(values, 50) / 1e6,
            f"{prefix}_ms_p99": _percentile(values, 99) / 1e6,
            f"{prefix}_ms_max": (values[-1] / 1e6) if values else math.nan,
            f"{prefix}_count": len(values),
        }


def _percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile; NaN for no samples."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def percentile(values: list[float] | list[int], pct: float) -> float:
    return _percentile(sorted(values), pct)
