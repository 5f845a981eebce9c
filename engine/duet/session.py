"""The session: the conductor that owns capture, listening, the context, generation and the
output scheduler, driven live on threads or step by step (`tick`) on a `FakeClock`."""
from __future__ import annotations

import collections
import logging
import queue
import threading
from typing import Any, Callable

from engine.clock import Clock, FakeClock, MonotonicClock, s_to_ns
from engine.duet.fitting import EchoWindows, within_limits
from engine.events import MidiEvent, Note
from engine.duet.worker import (
    ChunkGenerator, ChunkRequest, ChunkResult, EntryResult, GenerationWorker, NoteResult, SyncRequest,
)
from engine.duet.injection import EchoMeter, blend, input_delay_s, interleave
from engine.midi.capture import Capture
from engine.midi.scheduler import OutputScheduler
from engine.duet.performer import MEMORY_S, PerformerTrack
from engine.presets.schema import Preset
from engine.duet.control import SessionControl
from engine.duet.report import CueTimer, SessionEvent, SessionMetrics, lookahead_s, prepare_s
from engine.duet.turns import TurnTaking

__all__ = ["Session", "SessionEvent", "SessionMetrics"]

log = logging.getLogger(__name__)
_TICK_S = 0.002  # the live control loop's period (results and streamed notes wait at most this)
_FIRST_CHUNK_S = 0.5  # call-and-response: the answer's first chunk, kept short for latency
_RING_S = 0.5  # an answer's last notes may ring this long past its turn
_REVISE_EVERY_S = 0.25  # accompany/continuous: at most this often is the AI's written-ahead part rewritten


class Session(SessionControl, TurnTaking):
    """One jam. `start`/`stop` run it live on threads; `tick(now_ns)` (or `run_simulated`)
    drives the same logic from one thread on a `FakeClock`, generating synchronously.

    `set_mode`, `set_preset`, `panic`, `metrics` and `events` are safe from any thread: they
    post commands that the control thread applies at its next tick.
    """

    def __init__(self, input_port, output_port, model, tokenizer, preset: Preset, *, clock: Clock | None = None,
                 recorder=None, on_event: Callable[[SessionEvent], None] | None = None, seed: int = 0,
                 chunk_s: float = 1.0, channel: int = 0) -> None:
        self.clock = clock or MonotonicClock()
        self.tokenizer = tokenizer
        self.recorder = recorder
        self.on_event = on_event
        self.chunk_s = chunk_s
        self.channel = channel
        self._port_name = getattr(output_port, "name", "")
        self.capture = Capture(input_port, clock=self.clock)
        self.scheduler = OutputScheduler(output_port, self.clock, on_sent=self._on_sent,
                                         on_error=lambda exc: self._fail("output", exc))
        self.error: BaseException | None = None  # what stopped the session, if anything did
        self._chunks = ChunkGenerator(model, tokenizer, seed=seed)
        self._worker: GenerationWorker | None = None
        self._results: queue.Queue[ChunkResult | NoteResult] = queue.Queue()
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._events: collections.deque[SessionEvent] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()  # metrics shared with the scheduler thread's on_sent
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = False
        self._started = False
        self._stopped = False
        self.start_ns = 0
        self._apply_preset(preset)
        self.mode = preset.mode
        self.performer = PerformerTrack()
        self.listener = self.performer.listener
        self._ai: list[Note] = []  # AI notes scheduled (cancelled ones removed)
        self._epoch = 0
        self._in_flight = False
        self._cursor_s = 0.0  # generation writes from here on
        self._turn_end_s: float | None = None  # call-and-response: the AI's turn lasts until here
        self._turn_notes: list[Note] = []
        self._cues = CueTimer()
        self._enter = False  # the next chunk starts a turn: its first note sounds at its start
        self._entry_note: Note | None = None  # a hand-over answer's first note, sampled ahead
        self._entry_gen, self._entry_asked_gen = 0, -1
        self._entry_compute_s = 0.05  # running estimate of the compute until an entry's first note is ready
        self._chunk_compute_s = 0.05  # running estimate of any chunk's compute
        self._echo = EchoMeter()
        self._echo_windows = EchoWindows(self._echo)
        self.notes_out = self.chunks = self.generation_errors = self.late_notes = self.revisions = 0
        self._revise_at_s: float | None = None  # accompany/continuous: rewrite what is ahead then
        self._revised_s = -1.0
        self._late_ns_max = 0
        self._compute_s = self._music_s = 0.0

    # -- running ---------------------------------------------------------------------------

    def start(self, *, live: bool = True) -> None:
        """Begin the session at the clock's now. `live`: capture, generation, scheduler and
        control threads; otherwise the caller drives `tick`."""
        if self._started:
            raise RuntimeError("a Session runs once; make a new one")
        self._started, self._live = True, live
        self.start_ns = self.clock.now_ns()
        if not live:  # a simulation pumps its performer itself (e.g. FilePlayerPort.pump)
            self.capture.port.set_callback(self.capture.on_message)
        else:
            self.capture.start()  # also starts a file player's own thread
            self._worker = GenerationWorker(self._chunks, self._results.put)
            self._worker.start()
            self.scheduler.start()
            self._thread = threading.Thread(target=self._run, name="jamtui-session", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop every thread and end in silence (pending offs, CC64/123/121 on all channels)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        if self._worker is not None:
            self._worker.stop()
        self.capture.stop()
        self.scheduler.stop()

    def run_simulated(self, until_s: float, *, pump: Callable[[int], Any] | None = None,
                      step_s: float = 0.01) -> None:
        """Drive the session on its `FakeClock` until `until_s` session seconds; `pump(now_ns)`
        feeds the performer first at every step (e.g. `FilePlayerPort.pump`)."""
        if not isinstance(self.clock, FakeClock):
            raise TypeError("run_simulated needs a FakeClock")
        if not self._started:
            self.start(live=False)
        end_ns = self.start_ns + s_to_ns(until_s)
        step_ns = s_to_ns(step_s)
        while self.clock.now_ns() < end_ns:
            now_ns = min(self.clock.now_ns() + step_ns, end_ns)
            self.clock.set(now_ns)
            if pump is not None:
                pump(now_ns)
            self.tick(now_ns)

    def tick(self, now_ns: int | None = None) -> None:
        """One pass of the control loop: commands, input, results, decide, generate, send.

        Control thread only (the caller's thread when not live). Not live, generation runs
        here synchronously and the scheduler is stepped here too.
        """
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        now_s = self._now_s(now_ns)
        self._apply_commands(now_ns)
        for event in self.capture.drain():
            self._on_input(event, now_ns)
        while True:
            try:
                self._accept(self._results.get_nowait(), now_ns)
            except queue.Empty:
                break
        self._decide(now_ns, now_s)
        if not self._live:
            self.scheduler.step(now_ns)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # Wake at once for the performer (a yield must not wait a tick), else every _TICK_S.
                event = self.capture.get(timeout_s=_TICK_S)
                if event is not None:
                    self._on_input(event, self.clock.now_ns())
                self.tick()
        except BaseException as exc:  # noqa: BLE001 - whatever broke, the output ends in silence
            log.exception("session control loop failed; stopping in silence")
            self.scheduler.panic()
            self._fail("control", exc)

    # -- input -----------------------------------------------------------------------------

    def _on_input(self, event: MidiEvent, now_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.record("performer", event)
        took = self.performer.take(event, self._now_s(event.t_ns), self.preset.handover,
                                   keep_phrase=self.mode == "call-and-response")
        if took == "on":
            self._stale_entry()
        if took == "on" and self._turn_end_s is not None:
            self._yield(min(event.t_ns, now_ns))
        elif took == "on" and self.mode != "call-and-response" and self._revise_at_s is None:
            # Once the model may hear it (injection's input delay), what the AI wrote ahead is rewritten.
            settings = self._settings
            delay_s = input_delay_s(settings.respond_imitate, settings.respond_delay_s)
            self._revise_at_s = max(self._now_s(event.t_ns) + delay_s, self._revised_s + _REVISE_EVERY_S)
        elif took == "off":
            self._sync(self._now_s(now_ns))

    # -- deciding and generating -----------------------------------------------------------

    def _decide(self, now_ns: int, now_s: float) -> None:
        if self._revise_at_s is not None and now_s >= self._revise_at_s:
            self._revise(now_s)
        if self._in_flight:
            return
        if self.mode == "call-and-response":
            if self._turn_end_s is None:
                if self._pending_preset is not None:
                    self._apply_preset(self._pending_preset, now_s)
                    return
                cue_s = self._next_cue_s(now_s)
                if cue_s is None:
                    self._prepare_entry(now_s)
                    self.performer.handover = self.performer.handover and bool(self.performer.phrase)
                    return
                self._begin_turn(cue_s, now_ns)
            elif now_s >= self._turn_end_s + _RING_S and self._cursor_s >= self._turn_end_s:
                self._end_turn(now_s)
                return
            if self._cursor_s < self._turn_end_s and self._cursor_s < now_s + self._lookahead_s:
                # A short first chunk: its notes reach the scheduler sooner, the rest follow ahead of them.
                chunk_s = self.chunk_s if self._turn_notes else min(self.chunk_s, _FIRST_CHUNK_S)
                self._request(now_s, min(chunk_s, self._turn_end_s - self._cursor_s))
        else:
            if self._pending_preset is not None:
                self._apply_preset(self._pending_preset, now_s)
                return
            if not self._ai and not self._cues.pending and self._cursor_s <= now_s:
                # The AI's entry: scheduled a moment ahead and generated before it (the cue).
                self._cursor_s = self._on_beat(now_s + self._prepare_s)
                self._cues.cue(self.start_ns + s_to_ns(self._cursor_s))
                self._enter = True
            self._cursor_s = max(self._cursor_s, now_s)
            if self._cursor_s < now_s + self._lookahead_s:
                self._request(now_s, self.chunk_s)

    @property
    def _prepare_s(self) -> float:
        gap_s = self.preset.phrase_gap_s if self.mode == "call-and-response" else None
        return prepare_s(self._entry_compute_s, gap_s)

    @property
    def _lookahead_s(self) -> float:
        return lookahead_s(self.preset.lookahead_s, self._chunk_compute_s)

    def generate_chunk(self, now_s: float) -> list[Note]:
        """The model step on its own: AI notes for [now_s, now_s + chunk_s), blended and
        within the preset's limits, not scheduled. Not while live: the generation thread
        owns the model."""
        if self._live:
            raise RuntimeError("generate_chunk is for a session that is not live")
        result = self._chunks.run(self._make_request(now_s, now_s, self.chunk_s))
        if result.error is not None:
            raise result.error
        return self._fit(result.notes, now_s)

    def _context(self, now_s: float, until_s: float) -> tuple[Note, ...]:
        """Both players' notes for the model: the performer's as injection lets them in."""
        window_start_s = until_s - self.preset.context_s
        heard = interleave(self.performer.recent(window_start_s, now_s), now_s, self._settings)
        context = sorted([*heard.notes, *(n for n in self._ai if n.end_s > window_start_s)],
                         key=lambda n: (n.start_s, n.pitch))
        return tuple(context)

    def _make_request(self, now_s: float, from_s: float, chunk_s: float, enter: bool = False) -> ChunkRequest:
        return ChunkRequest(self._epoch, from_s, chunk_s, self._context(now_s, from_s), self.preset.context_s,
                            self._conditions, self._sampling, enter)

    def _sync(self, now_s: float) -> None:
        """Keep the model's context warm: take in what was played since the last chunk."""
        if not self._started or self._stopped:
            return
        until_s = max(self._cursor_s, now_s)
        request = SyncRequest(self._context(now_s, until_s), until_s, self.preset.context_s, self._conditions)
        if self._live:
            assert self._worker is not None
            self._worker.submit(request)
        else:
            self._chunks.sync(request)

    def _request(self, now_s: float, chunk_s: float) -> None:
        request = self._make_request(now_s, self._cursor_s, chunk_s, self._enter)
        self._enter = False
        self._in_flight = True
        now_ns = self.clock.now_ns()
        self._cues.requested(now_ns)
        if self._live:
            assert self._worker is not None
            self._worker.submit(request)
        else:
            self._accept(self._chunks.run(request), now_ns)

    def _accept(self, result: ChunkResult | NoteResult | EntryResult, now_ns: int) -> None:
        if isinstance(result, EntryResult):
            self._accept_entry(result)
            return
        request = result.request
        if request.epoch != self._epoch:
            return  # a chunk for a turn that was yielded, cancelled or re-moded: never sounds
        if isinstance(result, NoteResult):  # an entry's note, ahead of the rest of its chunk
            self._cues.computed(round(result.compute_s * 1e9), True)
            self._schedule(self._fit([result.note], self._now_s(now_ns)), now_ns)
            return
        self._in_flight = False
        now_s = self._now_s(now_ns)
        with self._lock:
            self.chunks += 1
            self._compute_s += result.compute_s
            self._music_s += request.chunk_s
        # An answer is ready when its first note is (later notes are computed while it plays).
        ready_s = result.first_note_s if result.first_note_s is not None else result.compute_s
        self._cues.computed(round(ready_s * 1e9), bool(result.notes))
        self._chunk_compute_s += 0.2 * (result.compute_s - self._chunk_compute_s)
        if request.enter:
            self._entry_compute_s += 0.2 * (ready_s - self._entry_compute_s)
        self._cursor_s = request.from_s + request.chunk_s
        if result.error is not None:
            self.generation_errors += 1
            self._emit("generation_failed", now_s, error=repr(result.error))
            return
        streamed = set(result.streamed)
        fitted = self._fit([n for n in result.notes if n not in streamed], now_s)
        self._schedule(fitted, now_ns)
        if self.mode != "call-and-response":
            self._echo_windows.add(fitted, self.performer.notes)
        if result.notes:
            self._sync(now_s)  # the context holds what the AI actually plays (blended, limited)

    def _fit(self, notes, now_s: float) -> list[Note]:
        blended = blend(notes, self.listener.listen(now_s), self._settings, self.performer.phrase)
        return within_limits(blended, self.preset.limits, self._ai, turn_end_s=self._turn_end_s, ring_s=_RING_S)

    def _out_ns(self, t_s: float) -> int:
        """Clock time at which session time t_s goes out of this port (its preset offset added)."""
        return self.start_ns + s_to_ns(t_s + self.preset.output_offset_ms.get(self._port_name, 0.0) / 1000)

    def _schedule(self, notes: list[Note], now_ns: int) -> None:
        for n in notes:
            on_ns, off_ns = self._out_ns(n.start_s), self._out_ns(n.end_s)
            if on_ns < now_ns:  # computed too late for its place: play it now, as long as meant
                with self._lock:
                    self.late_notes += 1
                    self._late_ns_max = max(self._late_ns_max, now_ns - on_ns)
                off_ns += now_ns - on_ns
                on_ns = now_ns
            self.scheduler.schedule_note(on_ns, max(off_ns, on_ns + 1_000_000), n.pitch, n.velocity, self.channel)
            self._cues.scheduled(on_ns)
            self._ai.append(n)
            self._turn_notes.append(n)
        if self._ai and self._ai[0].end_s < self._now_s(now_ns) - MEMORY_S:
            self._ai = [n for n in self._ai if n.end_s >= self._now_s(now_ns) - MEMORY_S]

    def _now_s(self, t_ns: int) -> float:
        return (t_ns - self.start_ns) / 1e9
