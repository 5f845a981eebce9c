"""The session: the conductor that owns capture, listening, the context, generation and the
output scheduler, driven live on threads or step by step (`tick`) on a `FakeClock`."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from engine.clock import Clock, FakeClock, MonotonicClock, s_to_ns
from engine.events import MidiEvent, Note
from engine.duet.ahead import Generation
from engine.duet.control import Commands, HandOver, Panic, SetMode, SetModel, SetPreset
from engine.duet.echo import EchoMeter, EchoWindows
from engine.duet.guide import KEY_WINDOW_S, Guide, guide_for
from engine.duet.injection import input_delay_s, interleave
from engine.duet.performer import PerformerTrack, Took
from engine.duet.playing import AIPart
from engine.duet.prime import read_prime
from engine.duet.report import CueTimer, EventKind, Report, SessionEvent, SessionMetrics
from engine.duet.remote import SessionRemote
from engine.duet.settings import injection_in, injection_of, prime_of
from engine.duet.turns import Turns
from engine.duet.worker import ChunkResult, EntryResult, ModelSwapped, NoteResult
from engine.midi.capture import Capture
from engine.presets.schema import Mode, Preset

__all__ = ["Session", "SessionEvent", "SessionMetrics"]

log = logging.getLogger(__name__)
_TICK_S = 0.002  # the live control loop's period (results and streamed notes wait at most this)


class Session:
    """One jam. `start`/`stop` run it live on threads; `tick(now_ns)` (or `run_simulated`)
    drives the same logic from one thread on a `FakeClock`, generating synchronously.

    It holds its parts: the performer's track, the AI's `Turns` (call-and-response), the
    `Generation` that writes the AI's part ahead of the clock, the `AIPart` that fits, schedules
    and sends it, the `Commands` other threads post, the `Report` (events and counters) and the
    `EchoMeter`.
    `set_mode`, `set_preset`, `set_model`, `panic`, `metrics`, `events` and `remote` are safe from
    any thread: the commands are applied by the control thread at its next tick.
    """

    def __init__(self, input_port, output_port, model, tokenizer, preset: Preset, *, clock: Clock | None = None,
                 recorder=None, on_event: Callable[[SessionEvent], None] | None = None, seed: int = 0,
                 chunk_s: float = 1.0, channel: int = 0) -> None:
        self.clock = clock or MonotonicClock()
        self.tokenizer = tokenizer
        self.recorder = recorder
        self.chunk_s = chunk_s
        self.channel = channel
        self._cues = CueTimer()
        self._report = Report(self._cues, on_event)
        self._commands = Commands()
        self.capture = Capture(input_port, clock=self.clock)
        self.error: BaseException | None = None  # what stopped the session, if anything did
        self.performer = PerformerTrack()
        self.listener = self.performer.listener
        self._echo = EchoMeter()
        self._echo_windows = EchoWindows(self._echo)
        self._turns = Turns(self._cues, self._echo, self._report.emit)
        read_prime(preset)  # a prime phrase that cannot be read stops the start here, in one line
        self._generation = Generation(model, tokenizer, preset, seed=seed, heard=self._heard, guide=self._guide)
        self._ai = AIPart(output_port, self.clock, performer=self.performer, generation=self._generation,
                          turns=self._turns, report=self._report, cues=self._cues, channel=channel,
                          recorder=lambda: self.recorder, on_error=lambda exc: self._fail("output", exc))
        self.scheduler = self._ai.scheduler
        self.remote = SessionRemote(self._commands, self._generation)  # hand over now, the AI's part as written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = self._started = self._stopped = False
        self.start_ns = 0
        self._apply_preset(preset)
        self.mode = Mode(preset.mode)

    # -- running (the owner's thread) ------------------------------------------------------

    def start(self, *, live: bool = True) -> None:
        """Begin the session at the clock's now. `live`: capture, generation, scheduler and
        control threads; otherwise the caller drives `tick`."""
        if self._started:
            raise RuntimeError("a Session runs once; make a new one")
        self._started, self._live = True, live
        self.start_ns = self.clock.now_ns()
        self._ai.start(self.start_ns, live=live)
        if not live:  # a simulation pumps its performer itself (e.g. FilePlayerPort.pump)
            self.capture.port.set_callback(self.capture.on_message)
        else:
            self.capture.start()  # also starts a file player's own thread
            self._generation.start()
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
        self._generation.stop()
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
        for result in self._generation.results():
            self._accept(result, now_ns)
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

    # -- control and reports (any thread) ---------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """A `Mode` (or its string); raises ValueError for anything else."""
        self._commands.set_mode(mode)

    def set_preset(self, preset: Preset) -> None:
        """Takes effect once the phrase being played is committed (the AI's turn ends). Its prime
        phrases are read here, in the caller's thread, so the control thread finds them read."""
        prime_of(preset)
        self._commands.set_preset(preset)

    def set_model(self, model, label: str) -> None:
        """Play `model` (already loaded, the same tokenizer) from the next chunk on: the generation
        thread takes it between two chunks, after reading the context with it, so the AI plays on
        without a gap. A `model_changed` event says when it did."""
        self._commands.set_model(model, label)

    def set_recorder(self, recorder) -> None:
        """Start (a `SessionRecorder`) or stop (None) recording mid-jam. Both players' events
        are recorded from the next one on; closing the old recorder is the caller's. (The
        capture and scheduler threads read the attribute per event.)"""
        self.recorder = recorder

    def panic(self) -> None:
        self._commands.panic()
        self.scheduler.panic()  # silence at once, whatever the control thread is doing

    def events(self) -> list[SessionEvent]:
        """The events since the last call (oldest first)."""
        return self._report.events()

    def metrics(self) -> SessionMetrics:
        return self._report.metrics(
            mode=self.mode, preset=self.preset.name, prepare_s=self._prepare_s, notes_in=self.performer.notes_in,
            lead_s=max(0.0, self._generation.cursor_s - self._now_s(self.clock.now_ns())),
            capture=self.capture.stats(), output=self.scheduler.stats(),
            generation_queue_depth=self._generation.depth,
            echo_rate=self._echo.echo_rate, ai_phrases=self._echo.ai_phrases)

    def response_samples_ms(self) -> list[float]:
        """Every response latency so far (ms), oldest first."""
        return self._report.response_samples_ms()

    def compute_s_since(self, before: SessionMetrics) -> float:
        """Generation compute (s) since `before` was taken (chunks are counted in metrics)."""
        return self._report.compute_s - before.compute_s

    @property
    def entry_prepared(self) -> bool:
        """Call-and-response with a hand-over key: the answer's first note is sampled and
        waits for the key (it is, once the performer has been silent a moment)."""
        return self._turns.entry_prepared

    # -- commands (control thread) -----------------------------------------------------------

    def _apply_commands(self, now_ns: int) -> None:
        now_s = self._now_s(now_ns)
        for command in self._commands.drain():
            match command:
                case SetMode(mode) if mode != self.mode:
                    self._change_mode(mode, now_s)
                case SetPreset(preset):
                    self._pending_preset = preset
                case SetModel(model, label):
                    self._take_now(self._generation.swap_model(model, label, now_s))
                case Panic():
                    # Also drops onsets a chunk scheduled between the silence and this tick.
                    self._reset_generation(now_ns)
                    self._report.emit(EventKind.PANICKED, now_s)
                case HandOver() if self.mode is Mode.CALL_AND_RESPONSE:
                    self._turns.hand_over(self.performer)

    def _change_mode(self, mode: Mode, now_s: float) -> None:
        self._reset_generation(self.start_ns + s_to_ns(now_s))
        old, self.mode = self.mode, mode
        self._report.emit(EventKind.MODE_CHANGED, now_s, mode=mode, previous=old)

    def _apply_preset(self, preset: Preset, now_s: float | None = None) -> None:
        self.preset = preset
        self._pending_preset = None
        self._base_settings = injection_of(preset.injection, preset.limits)
        self._generation.set_preset(preset)
        self._ai.set_preset(preset)
        if now_s is not None:
            self._report.emit(EventKind.PRESET_CHANGED, now_s, name=preset.name)
            if preset.mode != self.mode:
                self._change_mode(Mode(preset.mode), now_s)

    @property
    def _settings(self):
        return injection_in(self._base_settings, self.mode)

    def _reset_generation(self, now_ns: int) -> None:
        """Nothing the AI wrote after now_ns sounds; no turn; generation starts again at now."""
        self._ai.cancel_after(now_ns)
        self._turns.clear()
        self.performer.phrase = []
        self._generation.seek(self._now_s(now_ns))
        self._cues.cancel()

    def _revise(self, now_s: float) -> None:
        """Accompany/continuous: the performer played something new. Notes inside the commit
        window stay (they are about to sound); what the AI wrote beyond it is cancelled (notes
        already sounding keep their ends) and written again with the new notes in its context."""
        if self.mode is Mode.CALL_AND_RESPONSE:
            return
        if self._ai.rewrite_from(now_s + self.preset.commit_window_s, now_s):
            self._sync(now_s)  # else nothing was written beyond the window: the next chunk hears the new notes anyway

    # -- input (control thread) --------------------------------------------------------------

    def _on_input(self, event: MidiEvent, now_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.record("performer", event)
        took = self.performer.take(event, self._now_s(event.t_ns), self.preset.handover,
                                   keep_phrase=self.mode is Mode.CALL_AND_RESPONSE)
        if took is Took.KEY_DOWN:
            self._turns.stale_entry()
        if took is Took.KEY_DOWN and self._turns.end_s is not None:
            self._yield(min(event.t_ns, now_ns))
        elif took is Took.KEY_DOWN and self.mode is not Mode.CALL_AND_RESPONSE:
            # Once the model may hear it (injection's input delay), what the AI wrote ahead is rewritten.
            settings = self._settings
            self._generation.rewrite_at(self._now_s(event.t_ns) + input_delay_s(settings.respond_imitate,
                                                                           settings.respond_delay_s))
        elif took is Took.NOTE_ENDED:
            self._sync(self._now_s(now_ns))

    def _yield(self, at_ns: int) -> None:
        """The performer played at `at_ns`: no AI onset after it (one already sent ends now);
        notes that began before it keep their offs."""
        self._ai.cancel_after(at_ns)
        now_s = self._now_s(at_ns)
        self._turns.end(now_s, self.performer, yielded=True)
        self._sync(now_s)  # the answer's unplayed notes leave the model's context

    # -- deciding and generating (control thread) --------------------------------------------

    def _decide(self, now_ns: int, now_s: float) -> None:
        generation = self._generation
        if generation.rewrite_due(now_s):
            self._revise(now_s)
        if generation.in_flight:
            return
        turns = self._turns
        if self._pending_preset is not None and turns.end_s is None:  # a switch waits for the turn's end
            self._apply_preset(self._pending_preset, now_s)
            return
        if self.mode is Mode.CALL_AND_RESPONSE:
            if turns.end_s is None:
                cue_s = turns.next_cue_s(now_s, self.performer, self.preset.phrase_gap_s, self._prepare_s,
                                         lambda t_s: self.capture.next_beat_s(t_s, self.start_ns))
                if cue_s is None:
                    self._prepare_entry(now_s)
                    self.performer.handover = self.performer.handover and bool(self.performer.phrase)
                    return
                self._begin_turn(cue_s, now_ns)
            elif turns.over(now_s, generation.cursor_s):
                turns.end(now_s, self.performer)
                return
            chunk_s = turns.chunk_s(self.chunk_s, generation.cursor_s, generation.horizon_s(now_s))
            if chunk_s is not None:
                self._request(now_s, chunk_s)
        else:
            if not generation.notes and not self._cues.pending and generation.cursor_s <= now_s:
                # The AI's entry: scheduled a moment ahead and generated before it (the cue).
                generation.enter_at(self.capture.next_beat_s(now_s + self._prepare_s, self.start_ns))
                self._cues.cue(self.start_ns + s_to_ns(generation.cursor_s))
            generation.seek(max(generation.cursor_s, now_s))
            if generation.cursor_s < generation.horizon_s(now_s):
                self._request(now_s, self.chunk_s)

    def _begin_turn(self, cue_s: float, now_ns: int) -> None:
        entry = self._turns.begin(cue_s, self.performer, self.start_ns)
        self._generation.enter_at(cue_s)
        if entry is not None:
            self._ai.play_entry(entry, now_ns, self._settings)

    def _prepare_entry(self, now_s: float) -> None:
        gen = self._turns.entry_wanted(self.preset.handover, self.performer)
        if gen is not None:
            self._take_now(self._generation.prepare_entry(gen, now_s))

    @property
    def _prepare_s(self) -> float:
        return self._generation.prepare_s(
            self.preset.phrase_gap_s if self.mode is Mode.CALL_AND_RESPONSE else None)

    def generate_chunk(self, now_s: float) -> list[Note]:
        """The model step on its own: AI notes for [now_s, now_s + chunk_s), blended and
        within the preset's limits, not scheduled. Not while live: the generation thread
        owns the model."""
        if self._live:
            raise RuntimeError("generate_chunk is for a session that is not live")
        result = self._generation.write_now(now_s, self.chunk_s)
        if result.error is not None:
            raise result.error
        return self._ai.fit(result.notes, now_s, self._settings)

    def _heard(self, since_s: float, now_s: float) -> tuple[Note, ...]:
        """The performer's notes since since_s that the model hears at now_s (injection's choice)."""
        return interleave(self.performer.recent(since_s, now_s), now_s, self._settings).notes

    def _guide(self, now_s: float) -> Guide:
        """What the next chunk respects: the phrase being answered, else the performer's recent playing."""
        answering = self.mode is Mode.CALL_AND_RESPONSE and self.performer.phrase
        performer = self.performer.phrase if answering else self.performer.recent(now_s - KEY_WINDOW_S, now_s)
        return guide_for(self.preset, self.mode, performer, now_s)

    def _sync(self, now_s: float) -> None:
        """Keep the model's context warm: take in what was played since the last chunk."""
        if self._started and not self._stopped:
            self._generation.sync(now_s)

    def _request(self, now_s: float, chunk_s: float) -> None:
        self._cues.requested(self.clock.now_ns())
        self._take_now(self._generation.request(now_s, chunk_s))

    def _take_now(self, result: ChunkResult | EntryResult | ModelSwapped | None) -> None:
        """Not live, a request runs at once: its result is taken here."""
        if result is not None:
            self._accept(result, self.clock.now_ns())

    def _accept(self, result: ChunkResult | NoteResult | EntryResult | ModelSwapped, now_ns: int) -> None:
        if isinstance(result, EntryResult):
            self._turns.entry_sampled(result.request.gen, result.note)
            return
        if isinstance(result, ModelSwapped):
            if result.error is None:
                self._report.emit(EventKind.MODEL_CHANGED, self._now_s(now_ns), model=result.request.label,
                                  prefill_ms=round(result.compute_s * 1000, 1))
            else:
                self._report.emit(EventKind.GENERATION_FAILED, self._now_s(now_ns), error=repr(result.error))
            return
        if not self._generation.current(result):
            return  # a chunk for a turn that was yielded, cancelled or re-moded: never sounds
        now_s = self._now_s(now_ns)
        if isinstance(result, NoteResult):  # an entry's note, ahead of the rest of its chunk
            self._cues.computed(round(result.compute_s * 1e9), True)
            self._ai.schedule(self._ai.fit([result.note], now_s, self._settings), now_ns)
            return
        ready_s = self._generation.finished(result)
        self._report.chunk_done(result.compute_s, result.request.chunk_s)
        self._cues.computed(round(ready_s * 1e9), bool(result.notes))
        if result.error is not None:
            self._report.generation_failed()
            self._report.emit(EventKind.GENERATION_FAILED, now_s, error=repr(result.error))
            return
        streamed = set(result.streamed)
        fitted = self._ai.fit([n for n in result.notes if n not in streamed], now_s, self._settings)
        self._ai.schedule(fitted, now_ns)
        if self.mode is not Mode.CALL_AND_RESPONSE:
            self._echo_windows.add(fitted, self.performer.notes)
        if result.notes:
            self._sync(now_s)  # the context holds what the AI actually plays (blended, limited)

    # -- failing and time ---------------------------------------------------------------------

    def _fail(self, where: str, exc: BaseException) -> None:
        """A thread of the session died: it stops (in silence) and says why; the owner calls stop()."""
        if self.error is None:
            self.error = exc
            self._stop.set()
            self._report.emit(EventKind.FAILED, self._now_s(self.clock.now_ns()), where=where, error=repr(exc))

    def _now_s(self, t_ns: int) -> float:
        return (t_ns - self.start_ns) / 1e9
