"""What a session reports (its events and the counters behind its metrics) and how it times
its responses."""
from __future__ import annotations

import collections
import enum
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.metrics import LatencyTracker

log = logging.getLogger("engine.duet.session")


class EventKind(enum.StrEnum):
    """What a `SessionEvent` says happened; equal to its string name."""

    AI_PHRASE_STARTED = "ai_phrase_started"  # detail: until_s
    AI_PHRASE_ENDED = "ai_phrase_ended"
    AI_YIELDED = "ai_yielded"  # detail: before_entry (True when it had not played yet)
    MODE_CHANGED = "mode_changed"  # detail: mode, previous
    PRESET_CHANGED = "preset_changed"  # detail: name
    MODEL_CHANGED = "model_changed"  # detail: model (its label), prefill_ms; from the next chunk on
    PANICKED = "panicked"
    GENERATION_FAILED = "generation_failed"  # detail: error; the session plays on
    FAILED = "failed"  # detail: where, error; the session stops in silence


@dataclass(frozen=True)
class SessionEvent:
    """Something a UI shows: its kind, session seconds, detail."""

    kind: EventKind
    t_s: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionMetrics:
    mode: str  # a `Mode` from a session
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


class Report:
    """The events a session emits (a bounded stream the UI drains, and the `on_event`
    callback) and its counters, under one lock; `metrics` assembles them with the figures the
    session's parts keep. Any thread: the scheduler thread counts sends, the control thread
    the rest, a UI reads."""

    def __init__(self, cues: CueTimer, on_event: Callable[[SessionEvent], None] | None = None) -> None:
        self._cues = cues
        self._on_event = on_event
        self._events: collections.deque[SessionEvent] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()
        self._notes_out = self._chunks = self._generation_errors = self._late_notes = self._revisions = 0
        self._late_ns_max = 0
        self._compute_s = self._music_s = 0.0

    def emit(self, kind: EventKind, t_s: float, **detail: Any) -> None:
        event = SessionEvent(kind, t_s, detail)
        self._events.append(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # noqa: BLE001 - a UI bug must not stop the music
                log.exception("on_event callback failed")

    def events(self) -> list[SessionEvent]:
        """The events since the last call (oldest first)."""
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def note_sent(self) -> None:
        with self._lock:
            self._notes_out += 1

    def chunk_done(self, compute_s: float, music_s: float) -> None:
        """A chunk came back (failed or not) after `compute_s` of compute, for `music_s` of music."""
        with self._lock:
            self._chunks += 1
            self._compute_s += compute_s
            self._music_s += music_s

    def generation_failed(self) -> None:
        with self._lock:
            self._generation_errors += 1

    def late(self, late_ns: int) -> None:
        """A note computed after its time, played `late_ns` late."""
        with self._lock:
            self._late_notes += 1
            self._late_ns_max = max(self._late_ns_max, late_ns)

    def revised(self) -> None:
        with self._lock:
            self._revisions += 1

    @property
    def compute_s(self) -> float:
        """Generation compute (s) so far."""
        with self._lock:
            return self._compute_s

    def response_samples_ms(self) -> list[float]:
        """Every response latency so far (ms), oldest first."""
        return [v / 1e6 for v in self._cues.latency.samples()]

    def metrics(self, *, mode: str, preset: str, lead_s: float, prepare_s: float, notes_in: int,
                capture, output, generation_queue_depth: int, echo_rate: float, ai_phrases: int) -> SessionMetrics:
        """The counters with what the session passes in: `capture` and `output` are the
        capture's and the scheduler's stats."""
        summary = self._cues.latency.summary_ms("response")
        first = self._cues.entry_compute.summary_ms("first")
        with self._lock:
            return SessionMetrics(
                mode=mode,
                preset=preset,
                response_latency_ms_p50=summary["response_ms_p50"],
                response_latency_ms_p99=summary["response_ms_p99"],
                responses=int(summary["response_count"]),
                rtf=self._music_s / self._compute_s if self._compute_s else float("inf"),
                lead_s=lead_s,
                input_queue_depth=capture.queue_depth,
                output_pending=output.pending,
                generation_queue_depth=generation_queue_depth,
                dropped_onsets=capture.dropped + output.dropped_late,
                notes_in=notes_in,
                notes_out=self._notes_out,
                chunks=self._chunks,
                generation_errors=self._generation_errors,
                echo_rate=echo_rate,
                lateness_ms_p99=output.lateness_ms_p99,
                entry_compute_ms_p50=first["first_ms_p50"],
                ai_phrases=ai_phrases,
                compute_s=self._compute_s,
                late_notes=self._late_notes,
                revisions=self._revisions,
                late_ms_max=self._late_ns_max / 1e6,
                prepare_ms=prepare_s * 1000,
            )
