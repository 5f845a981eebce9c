"""The output scheduler: sends timed events at absolute deadlines and never leaves a note hanging.

One thread owns the output port and the note tracker. Other threads only post work
(`schedule*`, `cancel`, `panic`, `stop`); `step` does the sending and is called by the
scheduler thread, or directly by tests and the simulator driving a `FakeClock`.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from engine.clock import Clock, MonotonicClock
from engine.events import SUSTAIN_CC, Kind, MidiEvent, all_channels_off, control, note_off
from engine.metrics import LatencyTracker
from engine.midi.base import OutputPort, PortError
from engine.realtime import raise_thread_priority

log = logging.getLogger(__name__)

# Order of events that share a deadline: end notes first, so a re-strike at the same
# instant is off-then-on, then controllers (pedal), then new notes.
_PRIORITY_OFF, _PRIORITY_CONTROL, _PRIORITY_ON = 0, 1, 2
_IDLE_WAIT_NS = 100_000_000
_RETRY_WAIT_S = 0.05  # how often releases lost to a vanished port are tried again


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    sent: int
    pending: int
    sounding: int
    dropped_late: int
    cancelled: int
    send_errors: int
    lateness_ms_p50: float
    lateness_ms_p99: float
    lateness_ms_max: float


class OutputScheduler:
    """Sends events at their deadlines (clock ns) through one output port.

    Every note-on sent gets exactly one note-off: a re-struck pitch first ends the sounding
    note, and the older note's scheduled off is then skipped, so it never cuts the new one.
    Onsets later than `late_drop_ms` are dropped and counted; note-offs are never dropped.

    While the port fails (a vanished device), onsets are lost and not tracked; note-offs
    and pedal releases that could not be sent are owed and sent as soon as the port takes
    messages again, so a synth that comes back with the port holds no note.
    """

    def __init__(
        self,
        port: OutputPort,
        clock: Clock | None = None,
        *,
        late_drop_ms: float = 30.0,
        on_sent: Callable[[MidiEvent], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.port = port
        self.clock = clock or MonotonicClock()
        self.late_drop_ns = round(late_drop_ms * 1e6)
        self._on_sent = on_sent
        self._on_error = on_error
        self._lock = threading.RLock()
        # (deadline_ns, priority, seq, event, note_id)
        self._heap: list[tuple[int, int, int, MidiEvent, int | None]] = []
        self._seq = itertools.count()
        self._note_ids = itertools.count(1)
        self._raw_ids = itertools.count(-1, -1)
        # (channel, pitch) -> id of the note sounding there (raw note-ons get negative ids)
        self._sounding: dict[tuple[int, int], int] = {}
        self._sent_onsets: dict[int, int] = {}  # sounding note id -> its onset deadline
        self._pedal_down: set[int] = set()
        # Releases the port refused: (kind, channel, number) -> message, sent once it works again.
        self._owed: dict[tuple[str, int, int], MidiEvent] = {}
        self._panic_requested = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._silenced = False
        self.lateness = LatencyTracker()
        self.sent = 0
        self.dropped_late = 0
        self.cancelled = 0
        self.send_errors = 0
        self.error: BaseException | None = None
        self.priority = "not started"

    # -- posting work (any thread) -------------------------------------------------------

    def schedule(self, event: MidiEvent) -> None:
        """Send `event` at `event.t_ns`. Raw note events are tracked by (channel, pitch)."""
        self._push(event, None)

    def schedule_many(self, events: Iterable[MidiEvent]) -> None:
        with self._lock:
            for event in events:
                self._push(event, None, wake=False)
        self._wake.set()

    def schedule_note(self, on_ns: int, off_ns: int, pitch: int, velocity: int, channel: int = 0) -> int:
        """Schedule a whole note; returns its id. Its off only ever ends this note."""
        if off_ns <= on_ns:
            raise ValueError(f"note off at {off_ns} ns is not after its onset at {on_ns} ns")
        if not 1 <= velocity <= 127:
            raise ValueError(f"note velocity {velocity} is outside 1..127")
        note_id = next(self._note_ids)
        with self._lock:
            self._push(MidiEvent(on_ns, Kind.NOTE_ON, channel, pitch, velocity), note_id, wake=False)
            self._push(note_off(off_ns, pitch, channel), note_id, wake=False)
        self._wake.set()
        return note_id

    def cancel(self, after_ns: int) -> int:
        """Drop every onset scheduled after `after_ns` (and controllers there).

        Notes that start at or before `after_ns` keep their scheduled offs. A note that
        starts after it but has already sounded (after_ns lies in the past) is ended now.
        A sustain pedal left down by what remains is released. Returns onsets dropped.
        """
        with self._lock:
            now_ns = self.clock.now_ns()
            kept: list[tuple[int, int, int, MidiEvent, int | None]] = []
            dropped_ids: set[int] = set()
            dropped = 0
            for item in self._heap:
                deadline_ns, _, _, event, note_id = item
                if deadline_ns > after_ns and event.kind is not Kind.NOTE_OFF:
                    if event.kind is Kind.NOTE_ON:
                        dropped += 1
                        if note_id is not None:
                            dropped_ids.add(note_id)
                    continue
                kept.append(item)
            # Offs of notes that never started go too; they would be no-ops anyway.
            kept = [item for item in kept if item[4] is None or item[4] not in dropped_ids]
            # Notes that began after `after_ns` and are sounding now end now.
            for (channel, pitch), note_id in list(self._sounding.items()):
                onset = self._sent_onsets.get(note_id)
                if onset is not None and onset > after_ns:
                    kept.append((now_ns, _PRIORITY_OFF, next(self._seq), note_off(now_ns, pitch, channel), note_id))
            pedal_channels = set(self._pedal_down) | {item[3].channel for item in kept if _is_pedal(item[3])}
            for channel in sorted(pedal_channels):
                if self._pedal_state_after(kept, channel):
                    t_ns = max(after_ns, now_ns)
                    kept.append((t_ns, _PRIORITY_CONTROL, next(self._seq), control(t_ns, SUSTAIN_CC, 0, channel), None))
            heapq.heapify(kept)
            self._heap = kept
            self.cancelled += dropped
        self._wake.set()
        return dropped

    def panic(self) -> None:
        """Silence now: end every note, release pedals, all-sound-off on every channel."""
        with self._lock:
            self._panic_requested = True
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self.step()

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._thread = threading.Thread(target=self._run, name="jamtui-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop sending scheduled events and end in silence. Safe to call more than once."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("scheduler thread did not stop within %.1f s", timeout_s)
        if (thread is None or not thread.is_alive()) and not self._silenced:
            self._silence(panic=False)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def step(self, now_ns: int | None = None) -> int:
        """Send everything due at `now_ns` (default: the clock's now). Scheduler thread only."""
        sent = 0
        with self._lock:
            if self._panic_requested:
                self._panic_requested = False
                self._silence_locked(panic=True)
            now_ns = self.clock.now_ns() if now_ns is None else now_ns
            if self._owed:
                sent += self._pay_owed()
            while self._heap and self._heap[0][0] <= now_ns:
                deadline_ns, _, _, event, note_id = heapq.heappop(self._heap)
                sent += self._dispatch(event.at(deadline_ns), note_id)
        return sent

    def next_deadline_ns(self) -> int | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def stats(self) -> SchedulerStats:
        summary = self.lateness.summary_ms("lateness")
        with self._lock:
            return SchedulerStats(
                sent=self.sent,
                pending=len(self._heap),
                sounding=len(self._sounding),
                dropped_late=self.dropped_late,
                cancelled=self.cancelled,
                send_errors=self.send_errors,
                lateness_ms_p50=summary["lateness_ms_p50"],
                lateness_ms_p99=summary["lateness_ms_p99"],
                lateness_ms_max=summary["lateness_ms_max"],
            )

    def sounding(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self._sounding)

    # -- internals -------------------------------------------------------------------------

    def _push(self, event: MidiEvent, note_id: int | None, wake: bool = True) -> None:
        if event.kind is Kind.NOTE_ON and event.value == 0:
            event = note_off(event.t_ns, event.number, event.channel)
        if event.kind is Kind.NOTE_OFF:
            priority = _PRIORITY_OFF
        elif event.kind is Kind.NOTE_ON:
            priority = _PRIORITY_ON
        else:
            priority = _PRIORITY_CONTROL
        with self._lock:
            heapq.heappush(self._heap, (event.t_ns, priority, next(self._seq), event, note_id))
            if self._stop.is_set() and self._silenced:
                log.warning("event scheduled after the scheduler stopped; it will not be sent")
        if wake:
            self._wake.set()

    def _dispatch(self, event: MidiEvent, note_id: int | None) -> int:
        """Apply the tracker rules to one due event and send what they allow."""
        key = (event.channel, event.number)
        if event.kind is Kind.NOTE_ON:
            late_ns = self.clock.now_ns() - event.t_ns
            if late_ns > self.late_drop_ns:
                self.dropped_late += 1
                return 0
            sent = 0
            owed_off = self._owed.pop(("note", *key), None)  # its note outlived a failing port
            if key in self._sounding or owed_off is not None:
                # Re-strike: the old note ends here, its own scheduled off becomes a no-op.
                sent += self._release(note_off(event.t_ns, event.number, event.channel))
                self._sent_onsets.pop(self._sounding.pop(key, None), None)
            if not self._send(event):
                return sent  # the port lost it: nothing sounds, its scheduled off is skipped
            token = note_id if note_id is not None else next(self._raw_ids)
            self._sounding[key] = token
            self._sent_onsets[token] = event.t_ns
            return sent + 1
        if event.kind is Kind.NOTE_OFF:
            owner = self._sounding.get(key)
            if owner is None or (note_id is not None and owner != note_id):
                return 0
            del self._sounding[key]
            self._sent_onsets.pop(owner, None)
            return self._release(event)
        if _is_pedal(event):
            if event.value >= 64:
                self._pedal_down.add(event.channel)
                self._owed.pop(("pedal", event.channel, SUSTAIN_CC), None)
            else:
                self._pedal_down.discard(event.channel)
                return self._release(event)
        return self._send(event)

    def _release(self, event: MidiEvent) -> int:
        """Send a note-off or pedal-up; if the port refuses it, owe it."""
        sent = self._send(event)
        if not sent:
            kind = "note" if event.kind is Kind.NOTE_OFF else "pedal"
            self._owed[(kind, event.channel, event.number)] = event
        return sent

    def _pay_owed(self) -> int:
        """Send owed releases, oldest first, until the port refuses one (it is still gone)."""
        sent = 0
        now_ns = self.clock.now_ns()
        for key, event in list(self._owed.items()):
            if not self._send(event.at(now_ns)):
                break
            del self._owed[key]
            sent += 1
        return sent

    def _send(self, event: MidiEvent) -> int:
        now_ns = self.clock.now_ns()
        try:
            self.port.send(event.to_bytes())
        except PortError as exc:
            # A vanished port: what it was playing is gone with it; keep time and go on.
            self.send_errors += 1
            if self.send_errors == 1 or self.send_errors % 1000 == 0:
                log.warning("%s (%d messages lost so far)", exc, self.send_errors)
            return 0
        self.lateness.add(max(0, now_ns - event.t_ns))
        self.sent += 1
        if self._on_sent is not None:
            self._on_sent(event.at(now_ns))
        return 1

    def _pedal_state_after(self, items: list, channel: int) -> bool:
        down = channel in self._pedal_down
        for _, _, _, event, _ in sorted(items, key=lambda item: item[:3]):
            if _is_pedal(event) and event.channel == channel:
                down = event.value >= 64
        return down

    def _run(self) -> None:
        self.priority = raise_thread_priority()
        try:
            while not self._stop.is_set():
                self._wake.clear()
                with self._lock:
                    panic = self._panic_requested
                    next_ns = self._heap[0][0] if self._heap else None
                    owed = bool(self._owed)
                if panic:
                    self.step()
                    continue
                if owed and (next_ns is None or next_ns - self.clock.now_ns() > _RETRY_WAIT_S * 1e9):
                    if not self._wake.wait(_RETRY_WAIT_S):
                        self.step()  # try the owed releases again
                    continue
                if next_ns is None:
                    self._wake.wait(_IDLE_WAIT_NS / 1e9)
                    continue
                if self.clock.wait_until(next_ns, self._wake):
                    self.step()
        except BaseException as exc:  # noqa: BLE001 - any failure must still end in silence
            self.error = exc
            log.exception("scheduler thread failed; silencing output")
            if self._on_error is not None:
                try:
                    self._on_error(exc)
                except Exception:  # noqa: BLE001
                    log.exception("on_error callback failed")
        finally:
            self._silence(panic=False)

    def _silence(self, panic: bool) -> None:
        with self._lock:
            self._silence_locked(panic)

    def _silence_locked(self, panic: bool) -> None:
        """Pending note-offs, CC64=0, then CC123 and CC121 (and CC120 on panic) on every channel.

        Each message is sent on its own, so a failing port still gets every message tried.
        """
        now_ns = self.clock.now_ns()
        releases = [event.at(now_ns) for event in self._owed.values()]
        releases += [note_off(now_ns, pitch, channel) for (channel, pitch) in sorted(self._sounding)]
        releases += [control(now_ns, SUSTAIN_CC, 0, channel) for channel in range(16)]
        messages = all_channels_off(now_ns, panic=panic)
        self._heap.clear()
        self._owed.clear()
        self._sounding.clear()
        self._sent_onsets.clear()
        self._pedal_down.clear()
        # After a panic the scheduler goes on, and releases a failing port refused stay owed;
        # after the stop they are lost with the port.
        release = self._release if panic else self._send
        sends = [(release, m) for m in releases] + [(self._send, m) for m in messages]
        for send, message in sends:
            try:
                send(message)
            except Exception as exc:  # noqa: BLE001 - keep trying the rest
                self.send_errors += 1
                log.warning("could not send %s while silencing: %s", message.to_bytes().hex(" "), exc)
        if not panic:
            self._silenced = True


def _is_pedal(event: MidiEvent) -> bool:
    return event.kind is Kind.CONTROL and event.number == SUSTAIN_CC
