"""Call-and-response turn-taking for a `Session`: when the AI's turn starts (a phrase end
predicted from the silence, a hand-over key, the next beat under MIDI clock), how it ends or
yields, and a first note prepared ahead for the hand-over key."""
from __future__ import annotations

import math
from dataclasses import replace

from engine.clock import s_to_ns
from engine.events import Note
from engine.duet.worker import EntryRequest, EntryResult

_ANSWER_MIN_S, _ANSWER_MAX_S = 2.0, 6.0  # the AI's phrase length, from the call's


class TurnTaking:
    """Mixed into `Session`, whose state it reads and writes; control thread only."""

    def _next_cue_s(self, now_s: float) -> float | None:
        """Call-and-response: when the AI's turn starts, if it is time to prepare it. A phrase
        ends `phrase_gap_s` after the last key went up: the turn is generated `_prepare_s`
        before that, so the answer is ready on the cue (a key pressed before it cancels)."""
        if not self.performer.phrase or self.performer.held:
            return None
        if self.performer.handover:
            return self._on_beat(now_s)
        since = self.listener.silent_since()
        if since is None:
            return None
        cue_s = self._on_beat(since + self.preset.phrase_gap_s)
        return max(cue_s, now_s) if now_s >= cue_s - self._prepare_s else None

    def _on_beat(self, t_s: float) -> float:
        """With MIDI clock coming in, the first beat at or after t_s; else t_s (free time)."""
        grid = self.capture.beat_grid()
        if grid is None:
            return t_s
        beat_s, period_s = self._now_s(grid[0]), grid[1] / 1e9
        return beat_s + max(0, math.ceil((t_s - beat_s) / period_s - 1e-6)) * period_s

    def _begin_turn(self, cue_s: float, now_ns: int) -> None:
        handed_over = self.performer.handover
        phrase = self.performer.phrase
        span_s = max(n.end_s for n in phrase) - min(n.start_s for n in phrase)
        self._turn_end_s = cue_s + min(max(span_s, _ANSWER_MIN_S), _ANSWER_MAX_S)
        self._cursor_s = cue_s
        self._turn_notes = []
        self.performer.handover = False
        self._enter = True
        self._cues.cue(self.start_ns + s_to_ns(cue_s))
        self._emit("ai_phrase_started", cue_s, until_s=self._turn_end_s)
        entry, self._entry_note = self._entry_note, None
        self._entry_gen += 1  # a preparation still running is of no use now
        if handed_over and entry is not None:
            self._enter_prepared(entry, cue_s, now_ns)

    # -- a prepared entry for the hand-over key -------------------------------------------------

    def _prepare_entry(self, now_s: float) -> None:
        """While the performer is silent with a hand-over key set, the model's first note of
        an answer is sampled ahead (where it would start now), so pressing the key needs no
        compute before the answer sounds. A key played meanwhile makes it stale."""
        if (self.preset.handover is None or self._entry_asked_gen == self._entry_gen or not self.performer.phrase
                or self.performer.held or self.listener.silent_since() is None):
            return
        self._entry_asked_gen = self._entry_gen
        request = EntryRequest(self._entry_gen, now_s, self._context(now_s, now_s), self.preset.context_s,
                               self._conditions, self._sampling)
        if self._live:
            self._worker.submit(request)
        else:
            self._accept(self._chunks.prepare_entry(request), self.clock.now_ns())

    def _accept_entry(self, result: EntryResult) -> None:
        if result.request.gen == self._entry_gen and result.note is not None:
            self._entry_note = result.note

    def _enter_prepared(self, entry: Note, cue_s: float, now_ns: int) -> None:
        """The answer starts with the prepared note, moved to the cue; the first chunk then
        continues after it (the context takes the note in at its real time)."""
        placed = replace(entry, start_s=cue_s, end_s=cue_s + (entry.end_s - entry.start_s))
        fitted = self._fit([placed], self._now_s(now_ns))
        if not fitted:
            return  # blended away: the first chunk enters as usual
        self._cues.requested(now_ns)
        self._cues.computed(0, True)
        self._schedule(fitted, now_ns)
        self._enter = False

    def _stale_entry(self) -> None:
        self._entry_note = None
        self._entry_gen += 1

    def _end_turn(self, now_s: float, *, yielded: bool = False) -> None:
        sounded = [n for n in self._turn_notes if n.start_s < now_s]
        if sounded:
            self._echo.observe_performer(self.performer.phrase)
            self._echo.observe_ai(sounded)
        self._turn_end_s = None
        if not yielded:
            self.performer.phrase = []
        elif sounded:  # the performer cut in on the answer: their new call starts now
            self.performer.phrase = [n for n in self.performer.phrase if n.start_s >= now_s]
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
