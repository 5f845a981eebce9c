"""Where the performer and the AI meet: which performer notes enter the model's context, and
how the AI's notes are fitted under the performer (harmony, loudness, register, no echo)."""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from engine.events import Note
from engine.duet.listening import Listening

HARMONY_MODES = ("off", "drop", "move")
ANTI_ECHO_MODES = ("off", "penalty", "vary")  # vary: penalty, and rewrite phrases that still echo
CLASH_SEMITONES = frozenset({1, 11, 13})  # minor 2nd, major 7th, minor 9th
CHORD_SPREAD_S = 0.04  # onsets closer than this are one attack (as in engine.tokens.conditions)
_MAX_MOVE = 6  # semitones; further than a tritone is not "moving" a note any more
_MAX_INTERVAL = 24
_MAX_RHYTHM_STEP = 4


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    """What a performer chooses (a preset's [injection] table); a bad value raises ValueError
    naming the field. `respond_imitate`: 0 = the AI answers, 1 = it imitates. None turns
    `velocity_under_db` off; `register_low/high` (both or neither) keep an accompanist's band.
    """

    respond_imitate: float = 0.5
    respond_delay_s: float = 0.5
    respond_keep: float = 0.5
    harmony: str = "move"
    velocity_under_db: float | None = 3.0
    register_low: int | None = None
    register_high: int | None = None
    anti_echo: str = "vary"
    echo_threshold: float = 0.7
    echo_penalty_notes: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        low, high, under = self.register_low, self.register_high, self.velocity_under_db
        for field, ok, expected in (
            ("respond_imitate", _within(self.respond_imitate, 0, 1), "a number in [0, 1]"),
            ("respond_delay_s", _within(self.respond_delay_s, 0, 10), "seconds in [0, 10]"),
            ("respond_keep", _within(self.respond_keep, 0, 1) and self.respond_keep > 0, "a number in (0, 1]"),
            ("harmony", self.harmony in HARMONY_MODES, f"one of {', '.join(HARMONY_MODES)}"),
            ("velocity_under_db", under is None or _within(under, 0, 40), "None or dB in [0, 40]"),
            ("register_low", (low is None) == (high is None), "given together with register_high"),
            ("register_low", low is None or _within(low, 0, 116, integer=True), "a MIDI pitch in 0..116"),
            ("register_high", low is None or _within(high, low + 11, 127, integer=True), "<= 127, an octave above low"),
            ("anti_echo", self.anti_echo in ANTI_ECHO_MODES, f"one of {', '.join(ANTI_ECHO_MODES)}"),
            ("echo_threshold", _within(self.echo_threshold, 0, 1) and self.echo_threshold > 0, "a number in (0, 1]"),
            ("echo_penalty_notes", _within(self.echo_penalty_notes, 0, 64, integer=True), "an integer in 0..64"),
            ("seed", _within(self.seed, -math.inf, math.inf, integer=True), "an integer"),
        ):
            if not ok:
                raise ValueError(f"InjectionSettings.{field}: expected {expected}, got {getattr(self, field)!r}")


def _within(x: object, low: float, high: float, *, integer: bool = False) -> bool:
    # NaN fails the comparison, so it is refused along with everything out of range.
    return isinstance(x, int if integer else (int, float)) and not isinstance(x, bool) and low <= x <= high


@dataclass(frozen=True, slots=True)
class Interleaved:
    """One update's answer. `notes` enter the context now, at their true times; `pending`
    are not due yet and go back in with the next update. `avoid_pitches` and
    `echo_penalty` (0..1) are for the sampler, which turns them into a logit penalty."""

    notes: tuple[Note, ...]
    pending: tuple[Note, ...]
    input_delay_s: float
    weight: float
    avoid_pitches: tuple[int, ...] = ()
    echo_penalty: float = 0.0


def input_delay_s(respond_imitate: float, respond_delay_s: float) -> float:
    """Full delay when responding, none when imitating: an answer needs the question first."""
    return respond_delay_s * (1.0 - respond_imitate)


def keep_weight(respond_imitate: float, respond_keep: float) -> float:
    """The keep probability of a note of middling salience: respond_keep at 0, 1 at 1."""
    return respond_keep + (1.0 - respond_keep) * respond_imitate


def salience(notes: Sequence[Note]) -> list[float]:
    """How much each note stands out, in [0, 1]: outer voices of its attack and accents.

    Top voice 0.75 (a lone note is a top voice), bass 0.6, inner voices 0.2; a velocity
    above 64 raises it, reaching 1 at 112.
    """
    out = []
    for n in notes:
        attack = [m.pitch for m in notes if abs(m.start_s - n.start_s) < CHORD_SPREAD_S]
        voice = 0.75 if n.pitch == max(attack) else 0.6 if n.pitch == min(attack) else 0.2
        accent = min(max((n.velocity - 64) / 48, 0.0), 1.0)
        out.append(max(voice, accent))
    return out


def interleave(
    performer_notes: Sequence[Note], now_s: float, settings: InjectionSettings | None = None
) -> Interleaved:
    """Which of the performer's notes since the last update enter the context, and when.

    A note is due once now_s >= start_s + delay. A due note is kept with probability
    weight ** (2 * (1 - salience)): always at imitate (weight 1) or salience 1; `weight` for
    a middling note. The draw is seeded by (seed, start, pitch), so a note's fate does not
    depend on how the notes were split into updates. Thinning decides on due notes only.
    """
    settings = settings or InjectionSettings()
    dial = settings.respond_imitate
    ordered = sorted(performer_notes, key=lambda n: (n.start_s, n.pitch))
    delay = input_delay_s(dial, settings.respond_delay_s)
    weight = keep_weight(dial, settings.respond_keep)
    kept, pending = [], []
    for n, s in zip(ordered, salience(ordered)):  # salience over the whole batch: chords stay whole
        if n.start_s + delay > now_s:
            pending.append(n)
        elif _draw(settings.seed, n) < weight ** (2 * (1 - s)):
            kept.append(n)
    avoid: tuple[int, ...] = ()
    if settings.anti_echo != "off" and dial < 1:
        avoid = echo_penalty_pitches(ordered, settings.echo_penalty_notes)
    return Interleaved(tuple(kept), tuple(pending), delay, weight, avoid, (1.0 - dial) if avoid else 0.0)


def _draw(seed: int, note: Note) -> float:
    # String seeds hash with SHA-512: the same on every run and platform, unlike hash().
    return random.Random(f"{seed}:{round(note.start_s * 1e6)}:{note.pitch}").random()


def clashes(pitch: int, performer_pitches: Iterable[int]) -> bool:
    """A minor 2nd, major 7th or minor 9th against a performer pitch, unless the pitch
    class is one the performer plays (a Cmaj7's B is not a clash with its C)."""
    ps = list(performer_pitches)
    if pitch % 12 in {p % 12 for p in ps}:
        return False
    return any(abs(pitch - p) in CLASH_SEMITONES for p in ps)


def blend_harmony(ai_notes: Iterable[Note], listening: Listening, mode: str = "move") -> list[Note]:
    """Drop AI notes that clash with what the performer holds, or move each to the nearest
    pitch (down first on a tie) of the chord (else of the performer's pitch classes) that
    does not clash; a note with nothing within a tritone is dropped. "off" changes nothing."""
    if mode not in HARMONY_MODES:
        raise ValueError(f"blend_harmony: mode must be one of {', '.join(HARMONY_MODES)}, got {mode!r}")
    notes = list(ai_notes)
    held = listening.pitches
    if mode == "off" or not held:
        return notes
    targets = listening.chord.pitch_classes if listening.chord else listening.pitch_classes
    out = []
    for n in notes:
        if not clashes(n.pitch, held):
            out.append(n)
        elif mode == "move" and (pitch := _nearest_consonant(n.pitch, targets, held)) is not None:
            out.append(replace(n, pitch=pitch))
    return out


def _nearest_consonant(pitch: int, targets: frozenset[int], held: Sequence[int]) -> int | None:
    for step in range(1, _MAX_MOVE + 1):
        for p in (pitch - step, pitch + step):
            if 0 <= p <= 127 and p % 12 in targets and not clashes(p, held):
                return p
    return None


FOLLOW_RANGE = 4.0  # the most the AI's loudness is raised (+24 dB on the GM curve): a near-silent note stays soft


def blend_velocity(
    ai_notes: Iterable[Note], listening: Listening, under_db: float = 3.0, *, ai_mean_velocity: float | None = None
) -> list[Note]:
    """Scale AI velocities so their mean sits `under_db` below the performer's recent mean:
    the AI follows his dynamics both ways (softer when he plays softly, louder when he digs
    in) and keeps its own accents; always within 1..127, never raised more than FOLLOW_RANGE.

    dB follow the General MIDI velocity curve, level = 40 log10(v / 127), so a ratio of
    10 ** (-dB / 40). `ai_mean_velocity` is the AI's recent mean when the caller tracks
    one across chunks; by default the mean of these notes.
    """
    notes = list(ai_notes)
    if not notes:
        return notes
    scale = 1.0
    if listening.mean_velocity is not None:
        target = listening.mean_velocity * 10 ** (-under_db / 40)
        current = ai_mean_velocity if ai_mean_velocity is not None else statistics.fmean(n.velocity for n in notes)
        scale = min(target / max(current, 1.0), FOLLOW_RANGE)
    return [replace(n, velocity=min(max(round(n.velocity * scale), 1), 127)) for n in notes]


def keep_register(ai_notes: Iterable[Note], low: int, high: int) -> list[Note]:
    """Move each note by octaves into low..high, which must span at least an octave."""
    if not (0 <= low and high <= 127 and high - low >= 11):
        raise ValueError(f"keep_register: need 0 <= low, high <= 127 and an octave between, got {low}..{high}")
    return [n if low <= n.pitch <= high else replace(n, pitch=_into(n.pitch, low, high)) for n in ai_notes]


def blend(
    ai_notes: Iterable[Note], listening: Listening, settings: InjectionSettings, performer_phrase: Sequence[Note] = ()
) -> list[Note]:
    """Echo (anti_echo "vary", against `performer_phrase`), register, harmony and
    loudness, as the settings ask, in that order."""
    notes = list(ai_notes)
    if settings.anti_echo == "vary" and performer_phrase:
        notes = drop_echo(notes, performer_phrase, settings.echo_threshold)
    band = (settings.register_low, settings.register_high)
    if band[0] is not None:
        notes = keep_register(notes, *band)
    notes = blend_harmony(notes, listening, settings.harmony)
    if band[0] is not None:  # a moved note may step out of the band; octaves keep it a chord tone
        notes = keep_register(notes, *band)
    if settings.velocity_under_db is not None:
        notes = blend_velocity(notes, listening, settings.velocity_under_db)
    return notes


def contour(notes: Iterable[Note]) -> list[tuple[int, int | None]]:
    """(pitch interval, rhythm step) per step between successive onsets.

    The interval is clipped to two octaves; the rhythm step is the inter-onset interval
    over the phrase's median, in half-octaves of time (round(2 log2 ratio)), None for
    notes of one attack. Transposition and tempo leave it unchanged.
    """
    ns = sorted(notes, key=lambda n: (n.start_s, n.pitch))
    iois = [b.start_s - a.start_s for a, b in zip(ns, ns[1:])]
    spaced = [x for x in iois if x >= CHORD_SPREAD_S]
    ref = statistics.median(spaced) if spaced else 1.0
    out = []
    for a, b, ioi in zip(ns, ns[1:], iois):
        interval = min(max(b.pitch - a.pitch, -_MAX_INTERVAL), _MAX_INTERVAL)
        if ioi < CHORD_SPREAD_S:
            out.append((interval, None))
        else:
            step = round(2 * math.log2(ioi / ref))
            out.append((interval, min(max(step, -_MAX_RHYTHM_STEP), _MAX_RHYTHM_STEP)))
    return out


def phrase_similarity(a: Sequence[Note], b: Sequence[Note]) -> float:
    """1 - normalised edit distance between the two contours, in [0, 1].

    Substituting a step costs 0.5 per differing part (interval, rhythm), inserting or
    deleting one costs 1. Phrases of fewer than two notes have no contour: 0.
    """
    ca, cb = contour(a), contour(b)
    if not ca or not cb:
        return 0.0
    prev = [float(j) for j in range(len(cb) + 1)]
    for i, x in enumerate(ca, 1):
        cur = [float(i)]
        for j, y in enumerate(cb, 1):
            sub = prev[j - 1] + 0.5 * (x[0] != y[0]) + 0.5 * (x[1] != y[1])
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, sub))
        prev = cur
    return max(0.0, 1.0 - prev[-1] / max(len(ca), len(cb)))


def is_echo(
    ai_phrase: Sequence[Note], performer_phrase: Sequence[Note], threshold: float = 0.7, min_notes: int = 3
) -> bool:
    """The AI copies the performer's contour; phrases shorter than min_notes never count."""
    if min(len(ai_phrase), len(performer_phrase)) < min_notes:
        return False
    return phrase_similarity(ai_phrase, performer_phrase) >= threshold


def echo_penalty_pitches(performer_phrase: Sequence[Note], n: int = 8) -> tuple[int, ...]:
    """The phrase's first n pitches in onset order: an echo would play them next, so the
    sampler should lower their logits at the matching positions of the AI's answer."""
    ordered = sorted(performer_phrase, key=lambda x: (x.start_s, x.pitch))
    return tuple(x.pitch for x in ordered[:n])


def drop_echo(ai_phrase: Sequence[Note], performer_phrase: Sequence[Note], threshold: float = 0.7) -> list[Note]:
    """Leave a phrase that is not an echo alone; otherwise vary it and keep the first
    variation under the threshold (else the least similar). Deterministic.

    In order: inverted around its first note; with neighbour tones (every other note a
    whole tone up, which changes every interval, even of repeated notes); each of those
    with a long-short rhythm. Run it before `blend`, so the harmony check sees the result.
    """
    phrase = sorted(ai_phrase, key=lambda x: (x.start_s, x.pitch))
    if not is_echo(phrase, performer_phrase, threshold):
        return phrase
    inverted, neighboured = _invert(phrase), _neighbour_tones(phrase)
    variations = [inverted, neighboured, _long_short(inverted), _long_short(neighboured)]
    scored = [(phrase_similarity(v, performer_phrase), i) for i, v in enumerate(variations)]
    for score, i in scored:
        if score < threshold:
            return variations[i]
    return variations[min(scored)[1]]


def _invert(phrase: list[Note]) -> list[Note]:
    axis = phrase[0].pitch
    return [replace(n, pitch=_into(2 * axis - n.pitch)) for n in phrase]


def _neighbour_tones(phrase: list[Note]) -> list[Note]:
    return [replace(n, pitch=_into(n.pitch + 2)) if i % 2 else n for i, n in enumerate(phrase)]


def _into(pitch: int, low: int = 0, high: int = 127) -> int:
    # By octaves, so the pitch class survives; low..high spans at least an octave.
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def _long_short(phrase: list[Note]) -> list[Note]:
    """Alternate gaps 1.5x and 0.5x as long (a dotted feel); each pair keeps its total span."""
    out, t, gap_index = [phrase[0]], phrase[0].start_s, 0
    for a, b in zip(phrase, phrase[1:]):
        ioi = b.start_s - a.start_s
        if ioi >= CHORD_SPREAD_S:
            ioi *= 1.5 if gap_index % 2 == 0 else 0.5
            gap_index += 1
        t += ioi
        out.append(replace(b, start_s=t, end_s=t + b.duration_s))
    return out
