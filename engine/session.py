"""The session: the conductor that owns capture, listening, the context, generation and the
output scheduler, driven live on threads or step by step (`tick`) on a `FakeClock`."""
from __future__ import annotations

import collections
import logging
import queue
import threading
from dataclasses import replace
from typing import Any, Callable

from engine.clock import Clock, FakeClock, MonotonicClock, s_to_ns
from engine.events import AI, PERFORMER, SUSTAIN_CC, Kind, MidiEvent, Note
from engine.generation import ChunkGenerator, ChunkRequest, ChunkResult, GenerationWorker, SyncRequest
from engine.injection import EchoMeter, blend, interleave, keep_register
from engine.listening import Listener
from engine.midi.capture import Capture
from engine.midi.scheduler import OutputScheduler
from engine.presets import MODES, Preset
from engine.session_state import CueTimer, SessionEvent, SessionMetrics

__all__ = ["Session", "SessionEvent", "SessionMetrics"]

log = logging.getLogger(__name__)
_TICK_S = 0.005  # the live control loop's period
_ANSWER_MIN_S, _ANSWER_MAX_S = 2.0, 6.0  # call-and-response: the AI's phrase length, from the call's
_FIRST_CHUNK_S = 0.5  # call-and-response: the answer's first chunk, kept short for latency
_RING_S = 0.5  # an answer's last notes may ring this long past its turn
_MEMORY_S = 30.0  # notes kept for the context (the longest context_s)
_ECHO_PHRASE_S, _ECHO_CALL_S = 2.0, 4.0  # accompany/continuous: AI phrases of 2 s vs the performer's last 4 s
_PREPARE_MIN_S, _PREPARE_MAX_S = 0.06, 0.4  # a turn's first chunk is asked for this long before its cue


class Session:
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
        self.scheduler = OutputScheduler(output_port, self.clock, on_sent=self._on_sent)
        self._chunks = ChunkGenerator(model, tokenizer, seed=seed)
        self._worker: GenerationWorker | None = None
        self._results: queue.Queue[ChunkResult] = queue.Queue()
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
        self.listener = Listener()
        self._held: dict[int, tuple[float, int]] = {}  # performer keys down: pitch -> (start_s, velocity)
        self._performer: list[Note] = []
        self._ai: list[Note] = []  # AI notes scheduled (cancelled ones removed)
        self._phrase: list[Note] = []  # the performer's current call
        self._handover = False
        self._epoch = 0
        self._in_flight = False
        self._cursor_s = 0.0  # generation writes from here on
        self._turn_end_s: float | None = None  # call-and-response: the AI's turn lasts until here
        self._turn_notes: list[Note] = []
        self._echo_window: list[Note] = []  # accompany/continuous: the AI's phrase being collected
        self._cues = CueTimer()
        self._enter = False  # the next chunk starts a turn: its first note sounds at its start
        self._first_chunk_s = 0.05  # running estimate of a turn's first-chunk compute
        self._chunk_compute_s = 0.05  # running estimate of any chunk's compute
        self._echo = EchoMeter()
        self.notes_in = self.notes_out = self.chunks = self.generation_errors = 0
        self._compute_s = self._music_s = 0.0

    # -- control (any thread) --------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._commands.put(("mode", mode))

    def set_preset(self, preset: Preset) -> None:
        """Takes effect once the phrase being played is committed (the AI's turn ends)."""
        self._commands.put(("preset", preset))

    def panic(self) -> None:
        self._commands.put(("panic", None))
        self.scheduler.panic()  # silence at once, whatever the control thread is doing

    def events(self) -> list[SessionEvent]:
        """The events since the last call (oldest first)."""
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def metrics(self) -> SessionMetrics:
        stats, capture = self.scheduler.stats(), self.capture.stats()
        summary = self._cues.latency.summary_ms("response")
        first = self._cues.first_chunk.summary_ms("first")
        with self._lock:
            return SessionMetrics(
                mode=self.mode,
                response_latency_ms_p50=summary["response_ms_p50"],
                response_latency_ms_p99=summary["response_ms_p99"],
                responses=int(summary["response_count"]),
                rtf=self._music_s / self._compute_s if self._compute_s else float("inf"),
                lead_s=max(0.0, self._cursor_s - self._now_s(self.clock.now_ns())),
                input_queue_depth=capture.queue_depth,
                output_pending=stats.pending,
                generation_queue_depth=(self._worker.depth if self._worker else 0) + int(self._in_flight),
                dropped_onsets=capture.dropped + stats.dropped_late,
                notes_in=self.notes_in,
                notes_out=self.notes_out,
                chunks=self.chunks,
                generation_errors=self.generation_errors,
                echo_rate=self._echo.echo_rate,
                lateness_ms_p99=stats.lateness_ms_p99,
                first_chunk_ms_p50=first["first_ms_p50"],
                ai_phrases=self._echo.ai_phrases,
                compute_s=self._compute_s,
                prepare_ms=self._prepare_s * 1000,
            )

    def response_samples_ms(self) -> list[float]:
        """Every response latency so far (ms), oldest first."""
        return [v / 1e6 for v in self._cues.latency.samples()]

    def compute_s_since(self, before: SessionMetrics) -> float:
        """Generation compute (s) since `before` was taken (chunks are counted in metrics)."""
        with self._lock:
            return self._compute_s - before.compute_s

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
        except BaseException:  # noqa: BLE001 - whatever broke, the output ends in silence
            log.exception("session control loop failed; stopping in silence")
            self.scheduler.panic()
            self._emit("failed", self._now_s(self.clock.now_ns()))

    # -- input -----------------------------------------------------------------------------

    def _on_input(self, event: MidiEvent, now_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.record("performer", event)
        t_s = self._now_s(event.t_ns)
        handover = self.preset.handover
        if event.is_note_on:
            if handover is not None and handover.kind == "note" and event.number == handover.number:
                self._handover = True
                return
            self.notes_in += 1
            self.listener.note_on(t_s, event.number, event.value)
            self._held[event.number] = (t_s, event.value)
            if self._turn_end_s is not None:
                self._yield(min(event.t_ns, now_ns))
        elif event.is_note_off:
            self.listener.note_off(t_s, event.number)
            started = self._held.pop(event.number, None)
            if started is not None:
                note = Note(started[0], max(t_s, started[0] + 0.005), event.number, started[1], PERFORMER)
                self._performer.append(note)
                self._phrase.append(note)
                if self.mode != "call-and-response" and len(self._phrase) > 64:
                    self._phrase = self._phrase[-32:]  # no calls to answer: only the latest idea matters
                horizon = t_s - _MEMORY_S
                if self._performer[0].end_s < horizon:
                    self._performer = [n for n in self._performer if n.end_s >= horizon]
                self._sync(self._now_s(now_ns))
        elif event.kind is Kind.CONTROL:
            if event.number == SUSTAIN_CC:
                self.listener.pedal(t_s, event.value >= 64)
            if handover is not None and handover.kind == "cc" and event.number == handover.number and event.value >= 64:
                self._handover = True

    # -- deciding and generating -----------------------------------------------------------

    def _decide(self, now_ns: int, now_s: float) -> None:
        if self._in_flight:
            return
        if self.mode == "call-and-response":
            if self._turn_end_s is None:
                if self._pending_preset is not None:
                    self._apply_preset(self._pending_preset, now_s)
                    return
                cue_s = self._next_cue_s(now_s)
                if cue_s is None:
                    self._handover = self._handover and bool(self._phrase)
                    return
                self._begin_turn(cue_s)
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
                self._cursor_s = now_s + self._prepare_s
                self._cues.cue(self.start_ns + s_to_ns(self._cursor_s))
                self._enter = True
            self._cursor_s = max(self._cursor_s, now_s)
            if self._cursor_s < now_s + self._lookahead_s:
                self._request(now_s, self.chunk_s)

    @property
    def _prepare_s(self) -> float:
        """Lead for a turn's first chunk: a few times its measured compute, within bounds."""
        cap = min(_PREPARE_MAX_S, self.preset.phrase_gap_s / 2) if self.mode == "call-and-response" else _PREPARE_MAX_S
        return min(max(3 * self._first_chunk_s + 0.02, _PREPARE_MIN_S), cap)

    @property
    def _lookahead_s(self) -> float:
        """The preset's lookahead, longer on a machine too slow for it (play later, not stutter)."""
        return max(self.preset.lookahead_s, 2 * self._chunk_compute_s + 0.05)

    def _next_cue_s(self, now_s: float) -> float | None:
        """Call-and-response: when the AI's turn starts, if it is time to prepare it. A phrase
        ends `phrase_gap_s` after the last key went up: the turn is generated `_prepare_s`
        before that, so the answer is ready on the cue (a key pressed before it cancels)."""
        if not self._phrase or self._held:
            return None
        if self._handover:
            return now_s
        since = self.listener.silent_since()
        if since is None:
            return None
        cue_s = since + self.preset.phrase_gap_s
        return max(cue_s, now_s) if now_s >= cue_s - self._prepare_s else None

    def _begin_turn(self, cue_s: float) -> None:
        span_s = max(n.end_s for n in self._phrase) - min(n.start_s for n in self._phrase)
        self._turn_end_s = cue_s + min(max(span_s, _ANSWER_MIN_S), _ANSWER_MAX_S)
        self._cursor_s = cue_s
        self._turn_notes = []
        self._handover = False
        self._enter = True
        self._cues.cue(self.start_ns + s_to_ns(cue_s))
        self._emit("ai_phrase_started", cue_s, until_s=self._turn_end_s)

    def _end_turn(self, now_s: float, *, yielded: bool = False) -> None:
        sounded = [n for n in self._turn_notes if n.start_s < now_s]
        if sounded:
            self._echo.observe_performer(self._phrase)
            self._echo.observe_ai(sounded)
        self._turn_end_s = None
        if not yielded:
            self._phrase = []
        elif sounded:  # the performer cut in on the answer: their new call starts now
            self._phrase = [n for n in self._phrase if n.start_s >= now_s]
        # else: they played on before the answer began (a longer pause, not the end): same call
        self._cues.cancel()
        self._emit("ai_yielded" if yielded else "ai_phrase_ended", now_s, **({} if sounded or not yielded else {"before_entry": True}))

    def _yield(self, at_ns: int) -> None:
        """The performer played at `at_ns`: no AI onset after it (one already sent ends now);
        notes that began before it keep their offs."""
        self.scheduler.cancel(after_ns=at_ns)
        now_s = self._now_s(at_ns)
        self._ai = [n for n in self._ai if n.start_s <= now_s]
        self._epoch += 1
        self._in_flight = False
        self._end_turn(now_s, yielded=True)
        self._sync(now_s)  # the answer's unplayed notes leave the model's context

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
        performer = [n for n in self._performer if n.end_s > window_start_s]
        performer += [Note(s, max(now_s, s + 0.005), p, v, PERFORMER) for p, (s, v) in self._held.items()]
        heard = interleave(performer, now_s, self._settings)
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

    def _accept(self, result: ChunkResult, now_ns: int) -> None:
        request = result.request
        if request.epoch != self._epoch:
            return  # a chunk for a turn that was yielded, cancelled or re-moded: never sounds
        self._in_flight = False
        now_s = self._now_s(now_ns)
        with self._lock:
            self.chunks += 1
            self._compute_s += result.compute_s
            self._music_s += request.chunk_s
        self._cues.computed(round(result.compute_s * 1e9), bool(result.notes))
        self._chunk_compute_s += 0.2 * (result.compute_s - self._chunk_compute_s)
        if request.enter:
            self._first_chunk_s += 0.2 * (result.compute_s - self._first_chunk_s)
        self._cursor_s = request.from_s + request.chunk_s
        if result.error is not None:
            self.generation_errors += 1
            self._emit("generation_failed", now_s, error=repr(result.error))
            return
        fitted = self._fit(result.notes, now_s)
        self._schedule(fitted, now_ns)
        if self.mode != "call-and-response":
            self._observe_echo(fitted)
        if result.notes:
            self._sync(now_s)  # the context holds what the AI actually plays (blended, limited)

    def _observe_echo(self, notes: list[Note]) -> None:
        """Without turns, the AI's phrases are its 2 s stretches, each compared with what the
        performer played in the 4 s before it (when they played a phrase there)."""
        self._echo_window += notes
        if not self._echo_window or self._echo_window[-1].start_s - self._echo_window[0].start_s < _ECHO_PHRASE_S:
            return
        start_s = self._echo_window[0].start_s
        call = [n for n in self._performer if start_s - _ECHO_CALL_S <= n.start_s < start_s]
        if len(call) >= 3:
            self._echo.observe_performer(call)
            self._echo.observe_ai(self._echo_window)
        self._echo_window = []

    def _fit(self, notes, now_s: float) -> list[Note]:
        return self._within_limits(blend(notes, self.listener.listen(now_s), self._settings, self._phrase))

    def _within_limits(self, notes: list[Note]) -> list[Note]:
        limits = self.preset.limits
        if limits.high_pitch - limits.low_pitch >= 11:
            notes = keep_register(notes, limits.low_pitch, limits.high_pitch)
        out: list[Note] = []
        for n in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
            pitch = min(max(n.pitch, limits.low_pitch), limits.high_pitch)
            velocity = min(max(n.velocity, limits.min_velocity), limits.max_velocity)
            if self._turn_end_s is not None:
                if n.start_s >= self._turn_end_s:
                    continue
                n = replace(n, end_s=min(n.end_s, self._turn_end_s + _RING_S))
            sounding = [m for m in [*self._ai[-64:], *out] if m.start_s <= n.start_s < m.end_s]
            if len(sounding) >= limits.max_polyphony:
                continue
            out.append(replace(n, pitch=pitch, velocity=velocity, player=AI))
        return out

    def _schedule(self, notes: list[Note], now_ns: int) -> None:
        offset_ns = s_to_ns(self.preset.output_offset_ms.get(self._port_name, 0.0) / 1000)
        for n in notes:
            on_ns = self.start_ns + s_to_ns(n.start_s) + offset_ns
            off_ns = self.start_ns + s_to_ns(n.end_s) + offset_ns
            if on_ns < now_ns:  # computed too late for its place: play it now, as long as meant
                off_ns += now_ns - on_ns
                on_ns = now_ns
            self.scheduler.schedule_note(on_ns, max(off_ns, on_ns + 1_000_000), n.pitch, n.velocity, self.channel)
            self._cues.scheduled(on_ns)
            self._ai.append(n)
            self._turn_notes.append(n)
        if self._ai and self._ai[0].end_s < self._now_s(now_ns) - _MEMORY_S:
            self._ai = [n for n in self._ai if n.end_s >= self._now_s(now_ns) - _MEMORY_S]

    # -- output (scheduler thread) ---------------------------------------------------------

    def _on_sent(self, event: MidiEvent) -> None:
        if self.recorder is not None:
            self.recorder.record("ai", event)
        if not event.is_note_on:
            return
        with self._lock:
            self.notes_out += 1
        self._cues.sent(self.clock.now_ns() if self._live else event.t_ns, live=self._live)

    # -- commands --------------------------------------------------------------------------

    def _apply_commands(self, now_ns: int) -> None:
        now_s = self._now_s(now_ns)
        while True:
            try:
                kind, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if kind == "mode" and value != self.mode:
                self._change_mode(value, now_s)
            elif kind == "preset":
                self._pending_preset = value
            elif kind == "panic":
                # Also drops onsets a chunk scheduled between the silence and this tick.
                self._reset_generation(now_ns)
                self._emit("panicked", now_s)

    def _change_mode(self, mode: str, now_s: float) -> None:
        self._reset_generation(self.start_ns + s_to_ns(now_s))
        old, self.mode = self.mode, mode
        self._emit("mode_changed", now_s, mode=mode, previous=old)

    def _reset_generation(self, now_ns: int) -> None:
        self.scheduler.cancel(after_ns=now_ns)
        now_s = self._now_s(now_ns)
        self._ai = [n for n in self._ai if n.start_s <= now_s]
        self._epoch += 1
        self._in_flight = False
        self._turn_end_s = None
        self._phrase = []
        self._cursor_s = now_s
        self._cues.cancel()

    def _apply_preset(self, preset: Preset, now_s: float | None = None) -> None:
        self.preset = preset
        self._pending_preset = None
        self._base_settings = preset.injection.to_settings(preset.limits)
        self._sampling = preset.sampling.to_sampling()
        self._conditions = preset.conditioning.to_conditions()
        if now_s is not None:
            self._emit("preset_changed", now_s, name=preset.name)
            if preset.mode != self.mode:
                self._change_mode(preset.mode, now_s)

    @property
    def _settings(self):
        settings = self._base_settings
        if self.mode == "accompany" and settings.velocity_under_db is None:
            settings = replace(settings, velocity_under_db=3.0)  # an accompanist stays under the soloist
        return settings

    # -- helpers ---------------------------------------------------------------------------

    def _now_s(self, t_ns: int) -> float:
        return (t_ns - self.start_ns) / 1e9

    def _emit(self, kind: str, t_s: float, **detail: Any) -> None:
        event = SessionEvent(kind, t_s, detail)
        self._events.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a UI bug must not stop the music
                log.exception("on_event callback failed")
