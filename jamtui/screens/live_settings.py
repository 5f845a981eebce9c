"""The jam screen's live settings: the dial and temperature nudges, AI mute, hand over now and
tap tempo. `LiveSettings` is mixed into `JamScreen` (which has `preset_steps`, `mode`, `state`,
`status`, `bridge`, `taps`, `tap_clock`, `_update` and `_tell`); a changed setting reaches the
jam as a preset change, after the phrase being played."""
from __future__ import annotations

from dataclasses import fields, replace

from engine.duet.tap_tempo import TapTempo
from jamtui.widgets.eventlog import EventLog
from jamtui.widgets.status import RUNNING

# A nudge's preset section, field, step and name: the respond/imitate dial and the temperature.
_NUDGES = {"dial": ("injection", "respond_imitate", 0.05, "dial (respond → imitate)"),
           "temperature": ("sampling", "temperature", 0.05, "temperature")}


class LiveSettings:
    def action_nudge(self, setting: str, direction: int) -> None:
        """One small step of the dial or the temperature, kept in the schema's range. Mid-jam it
        reaches the jam as a preset change (after the phrase being played, like `]`); stopped, the
        next jam starts with it. Either way the preset in use keeps it until another is chosen."""
        part, name, step, label = _NUDGES[setting]
        current = self.preset_steps.current
        section = getattr(current, part)
        lo, hi = next(f.metadata["range"] for f in fields(section) if f.name == name)
        old = getattr(section, name)
        new = round(min(hi, max(lo, old + direction * step)), 2)
        if new == old:
            self.query_one(EventLog).write_note(f"{label} stays at {old:.2f}, the end of its range", "yellow")
            return
        self._play_changed(part, replace(section, **{name: new}), f"{label} {old:.2f} → {new:.2f}")

    def _play_changed(self, part: str, section, words: str) -> None:
        """The preset in use with one section changed, for the jam (after the phrase being played)
        and the next start; the mode in use stays (a change of one setting is not a preset's mode)."""
        preset = replace(self.preset_steps.current, mode=self.mode, **{part: section})
        self.preset_steps.current = preset
        running = self.state == RUNNING and self.bridge.set_preset(preset)
        self.query_one(EventLog).write_note(words + (" after this phrase" if running else ""))

    def action_toggle_ai(self) -> None:
        """Mute the AI or bring it back; the jam, its model and its clock go on either way."""
        muted = not self.status.ai_muted
        if not self.bridge.set_ai_muted(muted):
            self._tell("nothing is playing")
            return
        self._update(ai_muted=muted)
        self.query_one(EventLog).write_note("AI muted: it listens on, silently (a brings it back)" if muted
                                            else "AI back in", "bold yellow" if muted else "bold")

    def action_hand_over(self) -> None:
        """Call-and-response: the AI answers the phrase played so far, now."""
        if self.state != RUNNING:
            self._tell("nothing is playing")
        elif not self.bridge.hand_over():
            self._tell("hand-over is for call-and-response (1)", severity="warning")
        else:
            self.query_one(EventLog).write_note("handed over: the AI answers now (once your keys are up)", "cyan")

    def action_tap_tempo(self) -> None:
        """Two taps or more set the tempo the model is told (after the phrase being played, like a nudge)."""
        bpm = self.taps.tap(self.tap_clock())
        if bpm is None:
            self.query_one(EventLog).write_note("tap tempo: tap again on the beat")
        elif round(bpm) != round(self.status.told_bpm or 0):
            self._tell_tempo(bpm)

    def action_follow_tempo(self) -> None:
        """The model is told no tempo again: it follows the performer's pulse."""
        self.taps = TapTempo()
        self._tell_tempo(None)

    def _tell_tempo(self, bpm: float | None) -> None:
        conditioning = replace(self.preset_steps.current.conditioning, tempo_bpm=bpm)
        self._update(told_bpm=bpm)
        self._play_changed("conditioning", conditioning,
                           f"tempo told {bpm:.0f} bpm" if bpm else "tempo told none: the AI follows your pulse")
