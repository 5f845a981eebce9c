"""Call-and-response turn-taking: when the AI's turn starts (a phrase end predicted from the
silence, a hand-over key, the next beat under MIDI clock), how long its chunks are, how the
turn ends or yields, and a first note prepared ahead for the hand-over key."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from engine.clock import s_to_ns
from engine.events import Note
from engine.midi.notes import CHORD_S
from engine.duet.echo import EchoMeter
from engine.duet.performer import PerformerTrack
from engine.duet.report import CueTimer, EventKind

ANSWER_MIN_S, ANSWER_MAX_S = 2.0, 6.0  # the AI's phrase length, from the call's
FIRST_CHUNK_S = 0.5  # an answer's first chunk, kept short for latency
RING_S = 0.5  # an answer's last notes may ring this long past its turn
MIN_PHRASE_GAP_S = 0.3  # a phrase never ends sooner than this after the last key went up ...
GAP_IN_STEPS = 4.0  # ... nor later than this many of the performer's own steps (inter-onset intervals)
GAP_FROM_ONSETS = 16  # his recent steps: between his last this-many onsets
HELD_GAP_S = 0.5  # with keys still down, no new onset for this long (at least) ends a phrase
# A phrase lists notes as their keys come up, so its latest onsets sit among its last few notes:
# the cue (asked every control tick while the performer plays) looks only there, however long the call.
RECENT_NOTES = 4 * GAP_FROM_ONSETS


def phrase_gap_s(phrase: Sequence[Note], longest_s: float) -> float:
    """The silence that ends this performer's phrase: a pause that stands out from his own
    pulse (GAP_IN_STEPS of his median step), at least MIN_PHRASE_GAP_S and at most the
    preset's `phrase_gap_s` (`longest_s`). A pianist who rarely stops fully leaves such
    pauses far more often than a fixed 0.8 s of silence."""
    onsets: list[float] = []
    for start_s in sorted(n.start_s for n in phrase[-RECENT_NOTES:])[-GAP_FROM_ONSETS:]:
        if not onsets or start_s - onsets[-1] >= CHORD_S:
            onsets.append(start_s)
    if len(onsets) < 4:
        return longest_s
    steps = sorted(b - a for a, b in zip(onsets, onsets[1:]))
    return min(longest_s, max(MIN_PHRASE_GAP_S, GAP_IN_STEPS * steps[len(steps) // 2]))


class Turns:
    """The AI's turn: until when it lasts, the notes it played, and the entry note prepared
    for a hand-over key (with the generation counter that tells a stale one). It cues the
    `CueTimer` at a turn's start and cancels it at its end, scores the turn on the
    `EchoMeter` and emits the turn's events. Control thread only."""

    def __init__(self, cues: CueTimer, echo: EchoMeter, emit: Callable[..., None]) -> None:
        self._cues, self._echo, self._emit = cues, echo, emit
        self._end_s: float | None = None
        self._notes: list[Note] = []
        self._entry_note: Note | None = None  # a hand-over answer's first note, sampled ahead
        self._entry_gen, self._entry_asked_gen = 0, -1

    @property
    def end_s(self) -> float | None:
        """The AI's turn lasts until here; None while it is the performer's."""
        return self._end_s

    @property
    def entry_prepared(self) -> bool:
        """A first note for the hand-over key is ready."""
        return self._entry_note is not None

    # -- the turn ---------------------------------------------------------------------------

    def next_cue_s(self, now_s: float, performer: PerformerTrack, phrase_gap_s_max: float, prepare_s: float,
                   on_beat: Callable[[float], float]) -> float | None:
        """When the AI's turn starts, if it is time to prepare it. A phrase ends a pause after
        the last key went up (`phrase_gap_s`: as long as the preset's, or shorter for a
        performer whose pulse is faster), or a pause in his onsets while keys are still held
        (at least HELD_GAP_S): the turn is generated `prepare_s` before that, so
        the answer is ready on the cue (a key pressed before it cancels). `on_beat(t_s)`: the
        first beat at or after t_s (t_s itself in free time)."""
        if not performer.phrase:
            return None
        if performer.handover and not performer.held:
            return on_beat(now_s)
        gap_s = phrase_gap_s(performer.phrase, phrase_gap_s_max)
        if performer.held:
            # Keys still down (a held chord, a legato player who never lifts every key): a
            # pause in his onsets ends the phrase too, at least HELD_GAP_S after the last one.
            since = max(max(start_s for start_s, _ in performer.held.values()),
                        max(n.start_s for n in performer.phrase[-RECENT_NOTES:]))
            gap_s = max(gap_s, HELD_GAP_S)
        else:
            since = performer.listener.silent_since()
            if since is None:
                return None
        cue_s = on_beat(since + gap_s)
        return max(cue_s, now_s) if now_s >= cue_s - prepare_s else None

    def begin(self, cue_s: float, performer: PerformerTrack, start_ns: int) -> Note | None:
        """The AI's turn starts at cue_s, as long as the call (within bounds). Returns the
        prepared entry moved to the cue when the hand-over key began the turn, else None."""
        handed_over = performer.handover
        phrase = performer.phrase
        span_s = max(n.end_s for n in phrase) - min(n.start_s for n in phrase)
        self._end_s = cue_s + min(max(span_s, ANSWER_MIN_S), ANSWER_MAX_S)
        self._notes = []
        performer.handover = False
        self._cues.cue(start_ns + s_to_ns(cue_s))
        self._emit(EventKind.AI_PHRASE_STARTED, cue_s, until_s=self._end_s)
        entry, self._entry_note = self._entry_note, None
        self._entry_gen += 1  # a preparation still running is of no use now
        if not handed_over or entry is None:
            return None
        return replace(entry, start_s=cue_s, end_s=cue_s + (entry.end_s - entry.start_s))

    def chunk_s(self, chunk_s: float, cursor_s: float, horizon_s: float) -> float | None:
        """How much of the turn to generate from cursor_s now (None: nothing, it is written
        up to the turn's end or to `horizon_s`). A short first chunk: its notes reach the
        scheduler sooner, the rest follow ahead of them."""
        assert self._end_s is not None
        if cursor_s >= self._end_s or cursor_s >= horizon_s:
            return None
        first = chunk_s if self._notes else min(chunk_s, FIRST_CHUNK_S)
        return min(first, self._end_s - cursor_s)

    def over(self, now_s: float, cursor_s: float) -> bool:
        """The turn is written to its end and its last notes have rung."""
        return self._end_s is not None and now_s >= self._end_s + RING_S and cursor_s >= self._end_s

    def played(self, note: Note) -> None:
        """A note of the AI was scheduled (in a turn, it is the turn's)."""
        if self._end_s is not None:
            self._notes.append(note)

    def end(self, now_s: float, performer: PerformerTrack, *, yielded: bool = False) -> None:
        """The turn ends at now_s: it has played out, or (`yielded`) the performer came back."""
        sounded = [n for n in self._notes if n.start_s < now_s]
        if sounded:
            self._echo.observe_performer(performer.phrase)
            self._echo.observe_ai(sounded)
        self._end_s = None
        if not yielded:
            performer.phrase = []
        elif sounded:  # the performer cut in on the answer: their new call starts now
            performer.phrase = [n for n in performer.phrase if n.start_s >= now_s]
        # else: they played on before the answer began (a longer pause, not the end): same call
        self._cues.cancel()
        if yielded:
            self._emit(EventKind.AI_YIELDED, now_s, **({} if sounded else {"before_entry": True}))
        else:
            self._emit(EventKind.AI_PHRASE_ENDED, now_s)

    def hand_over(self, performer: PerformerTrack) -> None:
        """The performer hands the turn over now (the console's key): as the hand-over key does,
        the answer starts once no key is down; with no phrase played there is nothing to answer."""
        if self._end_s is None:
            performer.handover = bool(performer.phrase)

    def clear(self) -> None:
        """No turn any more (a panic, a mode change): the next one starts from a new call."""
        self._end_s = None

    # -- a prepared entry for the hand-over key ---------------------------------------------

    def entry_wanted(self, handover, performer: PerformerTrack) -> int | None:
        """While the performer is silent with a hand-over key set, the model's first note of an
        answer should be sampled ahead (where it would start now), so pressing the key needs no
        compute before the answer sounds. Returns the generation to ask for, once per silence."""
        if (handover is None or self._entry_asked_gen == self._entry_gen or not performer.phrase
                or performer.held or performer.listener.silent_since() is None):
            return None
        self._entry_asked_gen = self._entry_gen
        return self._entry_gen

    def entry_sampled(self, gen: int, note: Note | None) -> None:
        """The note sampled for generation `gen`; kept unless a key made it stale meanwhile."""
        if gen == self._entry_gen and note is not None:
            self._entry_note = note

    def stale_entry(self) -> None:
        """The performer played: a prepared entry no longer follows from what they played."""
        self._entry_note = None
        self._entry_gen += 1
