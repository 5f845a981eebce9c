"""`FilePlayerPort`: an input port that plays a MIDI file as if a performer were playing it."""
from __future__ import annotations

import collections
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from engine.clock import Clock, s_to_ns
from engine.events import ALL_NOTES_OFF_CC, ALL_SOUND_OFF_CC, SUSTAIN_CC
from engine.midi.base import InputCallback
from engine.midi.midifile import TimedMessage, load_pitched_events, midi_duration_s

logger = logging.getLogger(__name__)

DEFAULT_LOOP_GAP_S = 0.5


class FilePlayerPort:
    """Delivers a file's messages to the callback at their times on `clock`.

    Drive it with `start()` (a daemon thread waiting on the clock) or with `pump(now_ns)`
    from one thread; not both. `set_callback`, `close`, `wait` and `done` may be called
    from any thread. Whatever it delivered is tracked, and a pass that ends, `close()` or a
    callback error ends in silence: note-offs for held notes, CC64=0 for held pedals.
    """

    def __init__(
        self,
        events: Sequence[TimedMessage],
        clock: Clock,
        *,
        name: str = "file player",
        loop: bool = False,
        start_delay_s: float = 0.0,
        loop_gap_s: float = DEFAULT_LOOP_GAP_S,
        join_timeout_s: float = 2.0,
    ) -> None:
        if start_delay_s < 0 or loop_gap_s < 0:
            raise ValueError("start_delay_s and loop_gap_s must not be negative")
        self.name = name
        self.loop = loop
        self._events = sorted(events, key=lambda e: e.t_s)  # stable: equal times keep file order
        self._t_ns = [s_to_ns(e.t_s) for e in self._events]
        self._period_ns = s_to_ns(midi_duration_s(self._events)) + s_to_ns(loop_gap_s)
        if loop and self._events and self._period_ns <= 0:
            raise ValueError("a looping player needs a positive loop period (set loop_gap_s > 0)")
        self._clock = clock
        self._start_delay_ns = s_to_ns(start_delay_s)
        self._join_timeout_s = join_timeout_s
        self._callback: InputCallback | None = None
        # RLock: a callback may call close() on the player thread while it holds the lock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_ns: int | None = None
        self._index = 0
        self._pass = 0
        self._finished = not self._events
        self._closed = False
        self._held_notes: collections.Counter[tuple[int, int]] = collections.Counter()
        self._held_pedals: set[int] = set()
        self.error: BaseException | None = None
        if self._finished:
            self._done.set()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], clock: Clock, **kw: Any) -> FilePlayerPort:
        """Load `path` as a performer (raises `MidiFileError`; drums on channel 10 are left out, see
        `load_pitched_events`) and make a player named after the file."""
        kw.setdefault("name", f"file: {Path(path).name}")
        return cls(load_pitched_events(path), clock, **kw)

    @property
    def duration_s(self) -> float:
        return midi_duration_s(self._events)

    @property
    def done(self) -> bool:
        """True once the whole file was played, or the player was closed or failed."""
        return self._done.is_set()

    def set_callback(self, callback: InputCallback | None) -> None:
        # No lock: the player thread holds it while a callback runs, and a listener that
        # detaches from another thread must not wait for that callback to return.
        self._callback = callback

    def start(self) -> None:
        """Play on a daemon thread; the start time is fixed now, unless a `pump` fixed it."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self.name}: already started")
            if self._closed:
                raise RuntimeError(f"{self.name}: closed")
            self._fix_start(self._clock.now_ns())
            self._thread = threading.Thread(target=self._run, name=f"{self.name} player", daemon=True)
            self._thread.start()

    def pump(self, now_ns: int) -> int:
        """Deliver every message due at or before `now_ns`, stamped with its due time.

        Returns how many file messages went out. A callback error is stored, stops the
        player (after releasing what it held) and propagates.
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self.name}: pump() cannot drive a started player")
            if self._closed:
                return 0
            self._fix_start(now_ns)
            count = 0
            while (deadline_ns := self._deadline_ns()) is not None and deadline_ns <= now_ns:
                try:
                    self._step(deadline_ns)
                except BaseException as exc:
                    self._fail(exc, deadline_ns)
                    raise
                count += 1
            return count

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `done` (True) or `timeout` seconds (False); re-raise a callback error."""
        finished = self._done.wait(timeout)
        if self.error is not None:
            raise self.error
        return finished

    def close(self) -> None:
        """Stop playing and release every note and pedal still held at the receiver."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._join_timeout_s)
            if thread.is_alive():
                logger.warning(
                    "%s: player thread did not stop within %.1f s", self.name, self._join_timeout_s
                )
        with self._lock:
            if self._closed:
                return
            try:
                self._release(self._clock.now_ns())
            except Exception:
                logger.warning("%s: releasing held notes on close failed", self.name, exc_info=True)
            self._closed = True
            self._finished = True
            self._callback = None
            self._done.set()

    # -- below: called with self._lock held --------------------------------------------

    def _fix_start(self, now_ns: int) -> None:
        if self._start_ns is None:
            self._start_ns = now_ns + self._start_delay_ns

    def _deadline_ns(self) -> int | None:
        if self._finished or self._start_ns is None:
            return None
        return self._start_ns + self._pass * self._period_ns + self._t_ns[self._index]

    def _step(self, t_ns: int) -> None:
        data = self._events[self._index].data
        self._index += 1
        self._deliver(data, t_ns)
        if self._index == len(self._events):
            # A file that leaves notes or the pedal down must not leave them down for good.
            self._release(t_ns)
            if self.loop:
                self._pass += 1
                self._index = 0
            else:
                self._finished = True
                self._done.set()

    def _deliver(self, data: bytes, t_ns: int) -> None:
        callback = self._callback
        if callback is None:
            return  # nobody listening, as with a real port: nothing sounds, nothing to track
        # Track before the call: a note the receiver may have half-handled still gets its off.
        self._track(data)
        callback(data, t_ns)

    def _track(self, data: bytes) -> None:
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        if kind == 0x90 and data[2] > 0:
            self._held_notes[(channel, data[1])] += 1
        elif kind == 0x80 or kind == 0x90:
            key = (channel, data[1])
            if self._held_notes[key] > 1:
                self._held_notes[key] -= 1
            else:
                self._held_notes.pop(key, None)
        elif kind == 0xB0 and data[1] == SUSTAIN_CC:
            if data[2] >= 64:
                self._held_pedals.add(channel)
            else:
                self._held_pedals.discard(channel)
        elif kind == 0xB0 and data[1] in (ALL_NOTES_OFF_CC, ALL_SOUND_OFF_CC):
            for key in [k for k in self._held_notes if k[0] == channel]:
                del self._held_notes[key]

    def _release(self, t_ns: int) -> None:
        """Note-offs for held notes, then CC64=0 for held pedals; tries all, raises the first error."""
        messages = [
            bytes((0x80 | channel, pitch, 0))
            for (channel, pitch), count in sorted(self._held_notes.items())
            for _ in range(count)
        ]
        messages += [bytes((0xB0 | channel, SUSTAIN_CC, 0)) for channel in sorted(self._held_pedals)]
        first_error: BaseException | None = None
        for data in messages:
            try:
                self._deliver(data, t_ns)
            except Exception as exc:
                first_error = first_error or exc
        self._held_notes.clear()
        self._held_pedals.clear()
        if first_error is not None:
            raise first_error

    def _fail(self, exc: BaseException, t_ns: int) -> None:
        logger.error("%s: callback failed, stopping playback: %r", self.name, exc)
        self.error = exc
        self._stop.set()
        self._finished = True
        try:
            self._release(t_ns)
        except Exception:
            logger.warning("%s: releasing held notes after an error failed", self.name, exc_info=True)
        self._done.set()

    # -- the player thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    deadline_ns = self._deadline_ns()
                if deadline_ns is None or not self._clock.wait_until(deadline_ns, self._stop):
                    return
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._step(self._clock.now_ns())
        except BaseException as exc:
            with self._lock:
                self._fail(exc, self._clock.now_ns())
