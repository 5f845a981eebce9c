"""Capture: timestamped performer events in a bounded queue, with clock, sensing and sysex kept aside.

The port callback (rtmidi's thread) stamps and classifies each message and returns:
notes, pedal and other channel messages go to the queue; MIDI clock ticks feed a tempo
estimate and active sensing a liveness check without touching the queue, so a flood of
them can never delay or push out a note.
"""
from __future__ import annotations

import logging
import math
import queue
import statistics
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from engine.clock import Clock, MonotonicClock
from engine.events import Kind, MidiEvent, MidiParseError
from engine.midi.base import InputPort

log = logging.getLogger(__name__)

_CLOCK, _ACTIVE_SENSING = 0xF8, 0xFE
_START, _CONTINUE, _STOP = 0xFA, 0xFB, 0xFC
_TICKS_PER_BEAT = 24
_SENSING_TIMEOUT_NS = 300_000_000  # the MIDI spec's limit between active-sensing messages
_CLOCK_STALE_NS = 500_000_000


@dataclass(frozen=True, slots=True)
class CaptureStats:
    received: int
    queued: int
    dropped: int
    clock_ticks: int
    active_sensing: int
    sysex: int
    parse_errors: int
    queue_depth: int


class Capture:
    """Timestamped input from one port.

    Consumers either call `get`/`drain` themselves, or pass a `handler` to `start`, which
    then runs on the capture thread for every event in arrival order.
    """

    def __init__(self, port: InputPort, *, clock: Clock | None = None, maxsize: int = 2048) -> None:
        self.port = port
        self.clock = clock or MonotonicClock()
        self._queue: queue.Queue[MidiEvent] = queue.Queue(maxsize)
        self._clock_ticks_ns: deque[int] = deque(maxlen=_TICKS_PER_BEAT * 2 + 1)
        self._tick_index = 0  # clock ticks since Start (or since the first one): every 24th is a beat
        self._beat_ns: int | None = None  # the latest beat's tick
        self.sysex: deque[MidiEvent] = deque(maxlen=8)
        self._last_sensing_ns: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.received = self.queued = self.dropped = 0
        self.clock_ticks = self.active_sensing = self.sysex_count = self.parse_errors = 0

    # -- port callback thread --------------------------------------------------------------

    def on_message(self, raw: bytes, t_ns: int) -> None:
        """Port callback: classify and push; never blocks."""
        self.received += 1
        status = raw[0] if raw else 0
        if status == _CLOCK:
            self.clock_ticks += 1
            self._clock_ticks_ns.append(t_ns)
            if self._tick_index % _TICKS_PER_BEAT == 0:
                self._beat_ns = t_ns
            self._tick_index += 1
            return
        if status in (_START, _CONTINUE, _STOP):
            if status == _START:  # the next tick is the first beat
                self._tick_index = 0
            return
        if status == _ACTIVE_SENSING:
            self.active_sensing += 1
            self._last_sensing_ns = t_ns
            return
        try:
            event = MidiEvent.from_bytes(t_ns, raw)  # folds note-on velocity 0 into note-off
        except MidiParseError:
            self.parse_errors += 1
            return
        if event.kind is Kind.SYSEX:
            self.sysex_count += 1
            self.sysex.append(event)
            return
        try:
            self._queue.put_nowait(event)
            self.queued += 1
        except queue.Full:
            self.dropped += 1

    # -- consumers -------------------------------------------------------------------------

    def get(self, timeout_s: float | None = None) -> MidiEvent | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def drain(self) -> list[MidiEvent]:
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events

    def start(self, handler: Callable[[MidiEvent], None] | None = None, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.port.set_callback(self.on_message)
        if handler is not None:
            self._thread = threading.Thread(
                target=self._run, args=(handler, on_error), name="jamtui-capture", daemon=True
            )
            self._thread.start()
        start = getattr(self.port, "start", None)
        if callable(start):  # file players begin playing once someone listens
            start()

    def stop(self) -> None:
        self.port.set_callback(None)
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self, handler: Callable[[MidiEvent], None], on_error) -> None:
        try:
            while not self._stop.is_set():
                event = self.get(timeout_s=0.05)
                if event is not None:
                    handler(event)
        except BaseException as exc:  # noqa: BLE001 - reported so the owner can stop in silence
            self.error = exc
            log.exception("capture handler failed")
            if on_error is not None:
                on_error(exc)

    # -- what the side channels tell -------------------------------------------------------

    def tempo_bpm(self) -> float | None:
        """Tempo from incoming MIDI clock (24 ticks per beat), or None without a recent clock."""
        ticks = list(self._clock_ticks_ns)
        if len(ticks) < _TICKS_PER_BEAT // 2 or self.clock.now_ns() - ticks[-1] > _CLOCK_STALE_NS:
            return None
        intervals = [b - a for a, b in zip(ticks, ticks[1:])]
        tick_ns = statistics.median(intervals)
        return 60e9 / (tick_ns * _TICKS_PER_BEAT) if tick_ns > 0 else None

    def beat_grid(self) -> tuple[int, int] | None:
        """(the latest beat's time, the beat's length) in ns from incoming MIDI clock, or None
        without a recent clock. Beats count from Start, else from the first tick seen."""
        tempo = self.tempo_bpm()
        if tempo is None or self._beat_ns is None:
            return None
        return self._beat_ns, round(60e9 / tempo)

    def next_beat_s(self, t_s: float, origin_ns: int) -> float:
        """With MIDI clock coming in, the first beat at or after t_s (seconds since origin_ns,
        e.g. a session's start); else t_s itself (free time)."""
        grid = self.beat_grid()
        if grid is None:
            return t_s
        beat_s, period_s = (grid[0] - origin_ns) / 1e9, grid[1] / 1e9
        return beat_s + max(0, math.ceil((t_s - beat_s) / period_s - 1e-6)) * period_s

    def sender_alive(self) -> bool | None:
        """False when a sender that used active sensing went quiet; None if it never sent any."""
        if self._last_sensing_ns is None:
            return None
        return self.clock.now_ns() - self._last_sensing_ns <= _SENSING_TIMEOUT_NS

    def stats(self) -> CaptureStats:
        return CaptureStats(
            received=self.received,
            queued=self.queued,
            dropped=self.dropped,
            clock_ticks=self.clock_ticks,
            active_sensing=self.active_sensing,
            sysex=self.sysex_count,
            parse_errors=self.parse_errors,
            queue_depth=self._queue.qsize(),
        )
