"""What a session reports (events, metrics) and how it times its responses."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine.metrics import LatencyTracker

PREPARE_MIN_S, PREPARE_MAX_S = 0.06, 0.4  # a turn's first chunk is asked for this long before its cue


def prepare_s(entry_compute_s: float, phrase_gap_s: float | None) -> float:
    """Lead for an entry's first chunk: three times its measured compute, at least
    PREPARE_MIN_S, at most PREPARE_MAX_S and (call-and-response) half the phrase gap."""
    cap = PREPARE_MAX_S if phrase_gap_s is None else min(PREPARE_MAX_S, phrase_gap_s / 2)
    return min(max(3 * entry_compute_s + 0.02, PREPARE_MIN_S), cap)


def lookahead_s(preset_lookahead_s: float, chunk_compute_s: float) -> float:
    """The preset's lookahead, longer on a machine too slow for it (play later, not stutter)."""
    return max(preset_lookahead_s, 2 * chunk_compute_s + 0.05)


@dataclass(frozen=True)
class SessionEvent:
    """Something a UI shows: kind ("ai_phrase_started", "ai_phrase_ended", "ai_yielded",
    "mode_changed", "preset_changed", "panicked", "generation_failed", "failed"), session
    seconds, detail."""

    kind: str
    t_s: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionMetrics:
    mode: str
    response_latency_ms_p50: float
    response_latency_ms_p99: float
    responses: int
    rtf: float  # seconds of music generated per second of compute
    lead_s: float  # how far generation is ahead of now
    input_queue_depth: int
    output_pending: int
    generation_queue_depth: int
    dropped_onsets: int  # capture overflow + onsets the scheduler dropped as too late
    notes_in: int
    notes_out: int
    chunks: int
    generation_errors: int
    echo_rate: float
    lateness_ms_p99: float
    ai_phrases: int = 0  # the AI phrases echo_rate is counted over
    compute_s: float = 0.0  # generation compute so far
    late_notes: int = 0  # notes computed after their time, played at once instead
    late_ms_max: float = 0.0  # the latest of them
    revisions: int = 0  # accompany/continuous: times the AI's written-ahead notes were rewritten
    preset: str = ""  # the preset playing now (a switch waits for the phrase to end)
    entry_compute_ms_p50: float = 0.0  # compute until an entry's first note is ready (hidden by generating ahead)
    prepare_ms: float = 0.0  # how long before a predicted cue the turn's first chunk is asked for


class CueTimer:
    """Response latency: from a cue (the performer's phrase end, or the AI's scheduled entry)
    to the AI's first note-on after it.

    Live, the note-on's real send time counts. Under a `FakeClock` compute takes no virtual
    time, so the answer counts as ready at request time + the real compute of the chunks up
    to the one holding the first note, and the first note sounds at the later of that and
    its scheduled time. Thread-safe: the scheduler thread reports sends.
    """

    def __init__(self) -> None:
        self.latency = LatencyTracker()
        self.entry_compute = LatencyTracker()
        self._lock = threading.Lock()
        self._cue_ns: int | None = None
        self._request_ns: int | None = None
        self._compute_ns = 0
        self._answered = False
        self._first_on_ns: int | None = None

    @property
    def pending(self) -> bool:
        return self._cue_ns is not None

    def cue(self, at_ns: int) -> None:
        with self._lock:
            self._cue_ns, self._request_ns, self._compute_ns = at_ns, None, 0
            self._answered, self._first_on_ns = False, None

    def cancel(self) -> None:
        with self._lock:
            self._cue_ns = None

    def requested(self, now_ns: int) -> None:
        with self._lock:
            if self._cue_ns is not None and self._request_ns is None:
                self._request_ns = now_ns

    def computed(self, compute_ns: int, has_notes: bool) -> None:
        """A chunk for this cue came back after `compute_ns` of real compute."""
        with self._lock:
            if self._cue_ns is not None and not self._answered:
                self._compute_ns += compute_ns
                self._answered = has_notes
                if has_notes:
                    self.entry_compute.add(self._compute_ns)

    def scheduled(self, on_ns: int) -> None:
        with self._lock:
            if self._cue_ns is not None and (self._first_on_ns is None or on_ns < self._first_on_ns):
                self._first_on_ns = on_ns

    def sent(self, sent_ns: int, *, live: bool) -> None:
        """The first note-on after the cue left; records the response."""
        with self._lock:
            if self._cue_ns is None:
                return
            if live:
                waited = sent_ns - self._cue_ns
            else:
                ready = (self._request_ns if self._request_ns is not None else self._cue_ns) + self._compute_ns
                waited = max(self._first_on_ns if self._first_on_ns is not None else sent_ns, ready) - self._cue_ns
            self.latency.add(max(0, waited))
            self._cue_ns = None
