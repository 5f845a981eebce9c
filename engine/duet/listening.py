"""Follow the performer: the pitch classes in the air, a chord name, pulse, density, register
and phrase ends, as pure functions and a small `Listener` that gives `Listening` snapshots."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from engine.tokens.conditions import PITCH_CLASSES, estimate_tempo_bpm
from engine.events import PERFORMER, SUSTAIN_CC, Kind, MidiEvent, Note

# Intervals above the root. Order breaks ties: the plainer reading of a set of notes wins.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10),
    "dim": (0, 3, 6),
    "dim7": (0, 3, 6, 9),
    "aug": (0, 4, 8),
    "sus4": (0, 5, 7),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
}
_SUFFIX = {"maj": "", "min": "m"}  # lead-sheet names: "C", "Cm", the rest spelled as keyed

HARMONY_WINDOW_S = 1.5
RECENT_WINDOW_S = 4.0  # density, register, loudness
TEMPO_WINDOW_S = 8.0
MEMORY_S = 10.0  # what the Listener keeps; the longest window above, with room
_ATTACK_WEIGHT_S = 0.25  # a key just struck counts as if it had already sounded this long
_ACTIVE_FRACTION = 0.2  # a pitch class is "in the air" at this share of the strongest one
_MIN_CHORD_COSINE = 0.85
_BASS_BONUS = 0.05  # inversions are rarer than root position: the bass breaks ties


@dataclass(frozen=True, slots=True)
class Chord:
    root: int  # pitch class 0..11
    quality: str  # a key of CHORD_QUALITIES
    score: float  # cosine of the pitch-class weights with the template, plus the bass bonus

    @property
    def name(self) -> str:
        return PITCH_CLASSES[self.root] + _SUFFIX.get(self.quality, self.quality)

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in CHORD_QUALITIES[self.quality])


@dataclass(frozen=True, slots=True)
class Listening:
    """What the performer is doing at `t_s` (session seconds). None: not known yet.

    `pitches` are the distinct pitches held or just played (recency weighted, weak ones
    left out) and `pitch_classes` theirs; `held` the keys down now. Register, density and
    `mean_velocity` cover the last RECENT_WINDOW_S. `silence_s` is 0 while a key is down.
    """

    t_s: float
    pitch_class_weights: tuple[float, ...] = (0.0,) * 12  # sums to 1, or all 0 in silence
    pitches: tuple[int, ...] = ()
    held: tuple[int, ...] = ()
    sustain: bool = False
    chord: Chord | None = None
    tempo_bpm: float | None = None
    density_nps: float = 0.0
    lowest: int | None = None
    highest: int | None = None
    median: float | None = None
    mean_velocity: float | None = None
    since_last_note_s: float | None = None
    silence_s: float | None = None

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset(p % 12 for p in self.pitches)

    @property
    def chord_name(self) -> str | None:
        return self.chord.name if self.chord else None

    def phrase_ended(self, gap_s: float) -> bool:
        return phrase_ended(len(self.held), self.silence_s, gap_s)


def note_weights(notes: Iterable[Note], now_s: float, window_s: float = HARMONY_WINDOW_S) -> list[tuple[Note, float]]:
    """Weight each note by how long it sounded within the window and how recently.

    A note still sounding (end_s >= now_s) has full recency; one that stopped fades with a
    time constant of half the window. Notes that start after now or ended before the
    window are left out.
    """
    decay_s = window_s / 2
    out = []
    for n in notes:
        end_s = min(n.end_s, now_s)
        if n.start_s > now_s or end_s < now_s - window_s:
            continue
        overlap_s = max(end_s - max(n.start_s, now_s - window_s), 0.0)
        out.append((n, (_ATTACK_WEIGHT_S + overlap_s) * math.exp(-(now_s - end_s) / decay_s)))
    return out


def pitch_class_weights(weighted: Iterable[tuple[Note, float]]) -> tuple[float, ...]:
    """Sum of note weights per pitch class, normalised to sum 1 (all zeros if empty)."""
    w = [0.0] * 12
    for n, weight in weighted:
        w[n.pitch % 12] += weight
    total = sum(w)
    return tuple(x / total for x in w) if total > 0 else tuple(w)


def match_chord(weights: Sequence[float], bass_pc: int | None = None) -> Chord | None:
    """Best template by cosine with the pitch-class weights; None with fewer than three
    clear pitch classes or no template close enough.

    Symmetric and look-alike chords (C6 = Am7, F#m7b5 = Am6, the dim7 family) are told
    apart by the bass: the root on the bottom wins.
    """
    top = max(weights, default=0.0)
    if top <= 0 or sum(1 for x in weights if x >= _ACTIVE_FRACTION * top) < 3:
        return None
    norm = math.sqrt(sum(x * x for x in weights))
    best: Chord | None = None
    for quality, intervals in CHORD_QUALITIES.items():
        for root in range(12):
            inside = sum(weights[(root + i) % 12] for i in intervals)
            score = inside / (norm * math.sqrt(len(intervals)))
            if root == bass_pc:
                score += _BASS_BONUS
            if best is None or score > best.score + 1e-9:
                best = Chord(root, quality, score)
    if best is None or best.score - (_BASS_BONUS if best.root == bass_pc else 0) < _MIN_CHORD_COSINE:
        return None
    return best


def density_nps(onsets_s: Iterable[float], now_s: float, window_s: float = RECENT_WINDOW_S) -> float:
    """Onsets in (now - window, now] per second; every note of a chord counts."""
    return sum(1 for t in onsets_s if now_s - window_s < t <= now_s) / window_s


def register(pitches: Iterable[int]) -> tuple[int | None, int | None, float | None]:
    """(lowest, highest, median) of the pitches; Nones when there are none."""
    ps = sorted(pitches)
    if not ps:
        return None, None, None
    return ps[0], ps[-1], float(statistics.median(ps))


def phrase_ended(keys_held: int, silence_s: float | None, gap_s: float) -> bool:
    """A phrase has ended when no key is down and the silence has lasted at least gap_s.

    The sustain pedal does not hold a phrase open: pianists often leave it down while
    they lift their hands at a phrase end.
    """
    return keys_held == 0 and silence_s is not None and silence_s >= gap_s


class Listener:
    """Follows the performer from note and pedal events; `listen(now_s)` gives a snapshot.

    Times are session seconds passed in by the caller; nothing here reads a clock. AI
    notes are ignored. Not thread-safe: one owner thread (the session's) feeds and asks.
    """

    def __init__(
        self,
        *,
        harmony_window_s: float = HARMONY_WINDOW_S,
        recent_window_s: float = RECENT_WINDOW_S,
        tempo_window_s: float = TEMPO_WINDOW_S,
    ) -> None:
        self.harmony_window_s = harmony_window_s
        self.recent_window_s = recent_window_s
        self.tempo_window_s = tempo_window_s
        self._memory_s = max(harmony_window_s, recent_window_s, tempo_window_s, MEMORY_S)
        self._notes: list[Note] = []  # finished notes, in order of their end
        self._down: dict[int, tuple[float, int]] = {}  # keys held: pitch -> (start_s, velocity)
        self._sustained: dict[int, tuple[float, int]] = {}  # released under the pedal
        self._onsets: list[tuple[float, int, int]] = []  # (t_s, pitch, velocity) of every attack
        self._pedal = False
        self._last_key_s: float | None = None  # latest onset or release

    def note_on(self, t_s: float, pitch: int, velocity: int) -> None:
        if velocity <= 0:
            self.note_off(t_s, pitch)
            return
        for sounding in (self._down, self._sustained):  # a re-struck key ends its last sound
            if pitch in sounding:
                self._finish(pitch, sounding.pop(pitch), t_s)
        self._down[pitch] = (t_s, velocity)
        self._onsets.append((t_s, pitch, velocity))
        self._last_key_s = t_s
        self._forget(t_s)

    def note_off(self, t_s: float, pitch: int) -> None:
        if pitch not in self._down:
            return
        started = self._down.pop(pitch)
        if self._pedal:
            self._sustained[pitch] = started
        else:
            self._finish(pitch, started, t_s)
        self._last_key_s = t_s

    def pedal(self, t_s: float, down: bool) -> None:
        self._pedal = down
        if not down:
            for pitch, started in self._sustained.items():
                self._finish(pitch, started, t_s)
            self._sustained.clear()

    def add_note(self, note: Note) -> None:
        """Take a whole note (from a file or a player that hands out finished notes)."""
        if note.player != PERFORMER:
            return
        self._notes.append(note)
        self._onsets.append((note.start_s, note.pitch, note.velocity))
        self._last_key_s = note.end_s if self._last_key_s is None else max(self._last_key_s, note.end_s)
        self._forget(note.start_s)

    def add_notes(self, notes: Iterable[Note]) -> None:
        for n in notes:
            self.add_note(n)

    def feed(self, event: MidiEvent) -> None:
        """Take a captured MIDI event: note on/off and the sustain pedal; others are ignored."""
        t_s = event.t_ns / 1e9
        if event.is_note_on:
            self.note_on(t_s, event.number, event.value)
        elif event.is_note_off:
            self.note_off(t_s, event.number)
        elif event.kind is Kind.CONTROL and event.number == SUSTAIN_CC:
            self.pedal(t_s, event.value >= 64)

    @property
    def memory_size(self) -> int:
        """How many finished notes and onsets it keeps: bounded over a long jam, since what is
        older than its longest window (at least MEMORY_S) is forgotten."""
        return len(self._notes) + len(self._onsets)

    def silent_since(self) -> float | None:
        """When the performer's last key went up, while no key is down (else None)."""
        return None if self._down or self._last_key_s is None else self._last_key_s

    def phrase_ended(self, now_s: float, gap_s: float) -> bool:
        silence = None if self._last_key_s is None else (0.0 if self._down else now_s - self._last_key_s)
        return phrase_ended(len(self._down), silence, gap_s)

    def listen(self, now_s: float) -> Listening:
        sounding = [Note(s, now_s, p, v) for p, (s, v) in (*self._down.items(), *self._sustained.items())]
        weighted = note_weights([*self._notes, *sounding], now_s, self.harmony_window_s)
        weights = pitch_class_weights(weighted)
        strongest = max((w for _, w in weighted), default=0.0)
        pitches = sorted({n.pitch for n, w in weighted if w >= _ACTIVE_FRACTION * strongest})
        chord = match_chord(weights, pitches[0] % 12 if pitches else None)
        recent = [(p, v) for t, p, v in self._onsets if now_s - self.recent_window_s < t <= now_s]
        lowest, highest, median = register([p for p, _ in recent] + list(self._down))
        tempo_onsets = [t for t, _, _ in self._onsets if now_s - self.tempo_window_s < t <= now_s]
        last_onset = max((t for t, _, _ in self._onsets if t <= now_s), default=None)
        silence = None if self._last_key_s is None else (0.0 if self._down else max(now_s - self._last_key_s, 0.0))
        return Listening(
            t_s=now_s,
            pitch_class_weights=weights,
            pitches=tuple(pitches),
            held=tuple(sorted(self._down)),
            sustain=self._pedal,
            chord=chord,
            tempo_bpm=estimate_tempo_bpm(tempo_onsets),
            density_nps=density_nps((t for t, _, _ in self._onsets), now_s, self.recent_window_s),
            lowest=lowest,
            highest=highest,
            median=median,
            mean_velocity=statistics.fmean(v for _, v in recent) if recent else None,
            since_last_note_s=None if last_onset is None else now_s - last_onset,
            silence_s=silence,
        )

    def _finish(self, pitch: int, started: tuple[float, int], end_s: float) -> None:
        start_s, velocity = started
        self._notes.append(Note(start_s, max(end_s, start_s), pitch, velocity))

    def _forget(self, now_s: float) -> None:
        # Bounded memory over a long jam: nothing older than the longest window matters.
        horizon = now_s - self._memory_s
        if self._onsets and self._onsets[0][0] < horizon:
            self._onsets = [o for o in self._onsets if o[0] >= horizon]
            self._notes = [n for n in self._notes if n.end_s >= horizon]


def listen_to_notes(notes: Sequence[Note], now_s: float, **windows: float) -> Listening:
    """A snapshot from finished notes alone (a file, a test); notes with end_s > now_s
    count as still sounding, though not as keys held."""
    listener = Listener(**windows)
    listener.add_notes(n for n in notes if n.start_s <= now_s)
    return listener.listen(now_s)
