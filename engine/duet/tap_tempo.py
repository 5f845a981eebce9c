"""`TapTempo`: a tempo from a few taps of a key, as a pianist counts a band in."""
from __future__ import annotations

import statistics

RESTART_S = 2.0  # a pause longer than this between taps starts a new count
TAPS_KEPT = 8  # the tempo is the median of the last this-many intervals, less one
MIN_BPM, MAX_BPM = 20.0, 300.0  # the range a preset's tempo may take


class TapTempo:
    """Feed it the times (seconds, any monotonic clock) of taps; `tap` returns the tempo they
    give once there are two taps, else None. Not thread-safe: one owner (the console's thread)."""

    def __init__(self) -> None:
        self._taps: list[float] = []

    def tap(self, t_s: float) -> float | None:
        if self._taps and not 0 < t_s - self._taps[-1] <= RESTART_S:
            self._taps = []
        self._taps = [*self._taps, t_s][-TAPS_KEPT:]
        if len(self._taps) < 2:
            return None
        beat_s = statistics.median(b - a for a, b in zip(self._taps, self._taps[1:]))
        return round(min(max(60.0 / beat_s, MIN_BPM), MAX_BPM), 1)
