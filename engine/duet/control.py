"""The thread-safe face of a `Session`: commands posted to its control thread (mode, preset,
panic), the events and metrics a UI polls, how commands and generation resets are applied
on the control thread, and what the other threads report (a note sent, a thread failed)."""
from __future__ import annotations

import logging
import queue
from dataclasses import replace
from typing import Any

from engine.clock import s_to_ns
from engine.events import MidiEvent
from engine.presets.schema import MODES, Preset
from engine.duet.settings import conditions_of, injection_of, sampling_of
from engine.duet.report import SessionEvent, SessionMetrics

log = logging.getLogger("engine.duet.session")


class SessionControl:
    """Mixed into `Session`, whose state it reads. The public methods are safe from any
    thread; `_apply_commands`, `_revise` and `_reset_generation` run on the control thread,
    `_on_sent` on the scheduler's, `_fail` on whichever thread died."""

    # -- control (any thread) --------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._commands.put(("mode", mode))

    def set_preset(self, preset: Preset) -> None:
        """Takes effect once the phrase being played is committed (the AI's turn ends)."""
        self._commands.put(("preset", preset))

    def set_recorder(self, recorder) -> None:
        """Start (a `SessionRecorder`) or stop (None) recording mid-jam; any thread. Both
        players' events are recorded from the next one on; closing the old recorder is the
        caller's. (The capture and scheduler threads read the attribute per event.)"""
        self.recorder = recorder

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
        first = self._cues.entry_compute.summary_ms("first")
        with self._lock:
            return SessionMetrics(
                mode=self.mode,
                preset=self.preset.name,
                response_latency_ms_p50=summary["response_ms_p50"],
                response_latency_ms_p99=summary["response_ms_p99"],
                responses=int(summary["response_count"]),
                rtf=self._music_s / self._compute_s if self._compute_s else float("inf"),
                lead_s=max(0.0, self._cursor_s - self._now_s(self.clock.now_ns())),
                input_queue_depth=capture.queue_depth,
                output_pending=stats.pending,
                generation_queue_depth=(self._worker.depth if self._worker else 0) + int(self._in_flight),
                dropped_onsets=capture.dropped + stats.dropped_late,
                notes_in=self.performer.notes_in,
                notes_out=self.notes_out,
                chunks=self.chunks,
                generation_errors=self.generation_errors,
                echo_rate=self._echo.echo_rate,
                lateness_ms_p99=stats.lateness_ms_p99,
                entry_compute_ms_p50=first["first_ms_p50"],
                ai_phrases=self._echo.ai_phrases,
                compute_s=self._compute_s,
                late_notes=self.late_notes,
                revisions=self.revisions,
                late_ms_max=self._late_ns_max / 1e6,
                prepare_ms=self._prepare_s * 1000,
            )

    def response_samples_ms(self) -> list[float]:
        """Every response latency so far (ms), oldest first."""
        return [v / 1e6 for v in self._cues.latency.samples()]

    def compute_s_since(self, before: SessionMetrics) -> float:
        """Generation compute (s) since `before` was taken (chunks are counted in metrics)."""
        with self._lock:
            return self._compute_s - before.compute_s

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

    def _revise(self, now_s: float) -> None:
        """Accompany/continuous: the performer played something new. Notes inside the commit
        window stay (they are about to sound); what the AI wrote beyond it is cancelled (notes
        already sounding keep their ends) and written again with the new notes in its context."""
        self._revise_at_s = None
        if self.mode == "call-and-response":
            return
        keep_s = now_s + self.preset.commit_window_s
        if self._cursor_s <= keep_s:
            return  # nothing written beyond the window: the next chunk hears the new notes anyway
        self._revised_s = now_s
        self.scheduler.cancel(after_ns=self._out_ns(keep_s))
        self._ai = [n for n in self._ai if n.start_s < keep_s]
        self._epoch += 1
        self._in_flight = False
        self._cursor_s = keep_s
        self.revisions += 1
        self._sync(now_s)

    def _reset_generation(self, now_ns: int) -> None:
        self.scheduler.cancel(after_ns=now_ns)
        now_s = self._now_s(now_ns)
        self._ai = [n for n in self._ai if n.start_s <= now_s]
        self._epoch += 1
        self._in_flight = False
        self._turn_end_s = None
        self.performer.phrase = []
        self._cursor_s = now_s
        self._cues.cancel()

    def _apply_preset(self, preset: Preset, now_s: float | None = None) -> None:
        self.preset = preset
        self._pending_preset = None
        self._base_settings = injection_of(preset.injection, preset.limits)
        self._sampling = sampling_of(preset.sampling)
        self._conditions = conditions_of(preset.conditioning)
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

    def _fail(self, where: str, exc: BaseException) -> None:
        """A thread of the session died: it stops (in silence) and says why; the owner calls stop()."""
        if self.error is None:
            self.error = exc
            self._stop.set()
            self._emit("failed", self._now_s(self.clock.now_ns()), where=where, error=repr(exc))

    # -- output (scheduler thread) ---------------------------------------------------------

    def _on_sent(self, event: MidiEvent) -> None:
        if self.recorder is not None:
            self.recorder.record("ai", event)
        if not event.is_note_on:
            return
        with self._lock:
            self.notes_out += 1
        self._cues.sent(self.clock.now_ns() if self._live else event.t_ns, live=self._live)

    # -- helpers ---------------------------------------------------------------------------

    def _emit(self, kind: str, t_s: float, **detail: Any) -> None:
        event = SessionEvent(kind, t_s, detail)
        self._events.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # noqa: BLE001 - a UI bug must not stop the music
                log.exception("on_event callback failed")
