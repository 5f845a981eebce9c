"""The AI's part on its way out: its notes fitted to the preset and the performer, placed on
the output port's time, scheduled, and counted and recorded as they are sent."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from engine.clock import Clock, s_to_ns
from engine.events import MidiEvent, Note
from engine.duet.ahead import Generation
from engine.duet.fitting import within_limits
from engine.duet.injection import InjectionSettings, blend
from engine.duet.performer import PerformerTrack
from engine.duet.report import CueTimer, Report
from engine.duet.turns import RING_S, Turns
from engine.midi.scheduler import OutputScheduler
from engine.presets.schema import Limits, Preset


class AIPart:
    """What the AI plays, from the model's notes to the messages that left the port.

    It owns the output `scheduler`, the preset's limits and this port's output offset. It
    reads the performer, the turn and the AI's part written so far (`Generation.notes`), and
    tells them, the cues, the report and the recorder (`recorder()`: the session's, read per
    message) what it scheduled and sent.
    `on_sent` is the scheduler thread's (the caller's, not live); the rest the control thread's.
    """

    def __init__(self, output_port, clock: Clock, *, performer: PerformerTrack, generation: Generation,
                 turns: Turns, report: Report, cues: CueTimer, channel: int, recorder: Callable[[], Any],
                 on_error: Callable[[BaseException], Any] | None = None) -> None:
        self.clock = clock
        self._recorder = recorder
        self.scheduler = OutputScheduler(output_port, clock, on_sent=self.on_sent, on_error=on_error)
        self._port_name = getattr(output_port, "name", "")
        self._performer, self._generation, self._turns = performer, generation, turns
        self._report, self._cues = report, cues
        self._channel = channel
        self._start_ns = 0
        self._live = False
        self._limits: Limits | None = None
        self._offset_s = 0.0

    def start(self, start_ns: int, *, live: bool) -> None:
        """Session time 0 is start_ns on the clock; `live`: the scheduler runs on its own thread."""
        self._start_ns, self._live = start_ns, live

    def set_preset(self, preset: Preset) -> None:
        """The preset's limits and this port's output offset, from the next note on."""
        self._limits = preset.limits
        self._offset_s = preset.output_offset_ms.get(self._port_name, 0.0) / 1000

    def fit(self, notes: Sequence[Note], now_s: float, settings: InjectionSettings) -> list[Note]:
        """The notes as the AI plays them: blended with the performer (injection's settings),
        then within the preset's limits and the turn."""
        performer = self._performer
        blended = blend(notes, performer.listener.listen(now_s), settings, performer.phrase)
        return within_limits(blended, self._limits, self._generation.notes, turn_end_s=self._turns.end_s,
                             ring_s=RING_S)

    def out_ns(self, t_s: float) -> int:
        """Clock time at which session time t_s goes out of this port (its preset offset added)."""
        return self._start_ns + s_to_ns(t_s + self._offset_s)

    def play_entry(self, entry: Note, now_ns: int, settings: InjectionSettings) -> None:
        """The answer starts with the prepared note, now; the first chunk then continues after it
        (the context takes the note in at its real time). Blended away, the first chunk enters as usual."""
        fitted = self.fit([entry], (now_ns - self._start_ns) / 1e9, settings)
        if fitted:
            self._cues.requested(now_ns)
            self._cues.computed(0, True)
            self.schedule(fitted, now_ns)
            self._generation.entry_played()

    def cancel_after(self, at_ns: int) -> None:
        """No AI onset after at_ns (one already sent ends now), nor a chunk being computed."""
        self.scheduler.cancel(after_ns=at_ns)
        self._generation.cancel_after((at_ns - self._start_ns) / 1e9)

    def rewrite_from(self, keep_s: float, now_s: float) -> bool:
        """What the AI wrote from keep_s on is cancelled (notes already sounding keep their ends),
        to be written again; False (and nothing changes) when nothing is written beyond it."""
        if not self._generation.rewrite_from(keep_s, now_s):
            return False
        self.scheduler.cancel(after_ns=self.out_ns(keep_s))
        self._report.revised()
        return True

    def schedule(self, notes: list[Note], now_ns: int) -> None:
        """Send these (fitted) notes at their times, each counted in the turn and the AI's part."""
        for n in notes:
            on_ns, off_ns = self.out_ns(n.start_s), self.out_ns(n.end_s)
            if on_ns < now_ns:  # computed too late for its place: play it now, as long as meant
                self._report.late(now_ns - on_ns)
                off_ns += now_ns - on_ns
                on_ns = now_ns
            self.scheduler.schedule_note(on_ns, max(off_ns, on_ns + 1_000_000), n.pitch, n.velocity, self._channel)
            self._cues.scheduled(on_ns)
            self._turns.played(n)
        self._generation.wrote(notes, (now_ns - self._start_ns) / 1e9)

    def on_sent(self, event: MidiEvent) -> None:
        """Scheduler thread (or the caller's, not live): a message left the output port."""
        recorder = self._recorder()
        if recorder is not None:
            recorder.record("ai", event)
        if event.is_note_on:
            self._report.note_sent()
            self._cues.sent(self.clock.now_ns() if self._live else event.t_ns, live=self._live)
