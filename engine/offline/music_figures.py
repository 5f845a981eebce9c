"""The musical figures of a duet, one function each: re-strikes, key agreement, density, answers,
answer length, motif reuse, register, polyphony, chords, pulse and velocity; every constant that defines one is named here."""
from __future__ import annotations

import bisect
import math
import statistics
from typing import Sequence

import numpy as np

from engine.events import Note
from engine.midi.notes import CHORD_S, top_voice
from engine.tokens.pulse import pulse_grid
from engine.tokens.keys import compatible, find_key

HAMMER_GAP_S = 0.05  # a re-strike closer than this to the same pitch's release hammers the key
KEY_WINDOW_S = 8.0  # accompany/continuous: the AI's key per window of this length
KEY_CONTEXT_BEFORE_S = 4.0  # ... against the performer's notes from this long before the window to its end
KEY_CALL_S = 8.0  # call-and-response: each AI phrase against the performer's last 8 s
MIN_KEY_NOTES = 4  # a window or phrase with fewer AI notes has no key worth judging
AI_PHRASE_GAP_S = 0.8  # AI phrases (and the performer's, for density) split at silences this long
PERFORMER_PHRASE_GAP_S = 1.5  # the performer's phrases (answers, motif reuse) split at silences this long
ANSWER_WITHIN_S = 3.0
SHORT_ANSWER_NOTES = 5  # an AI phrase of this many notes or fewer, not cut in on, is a scrap
MOTIF_N = 3  # intervals per motif n-gram (four notes)
COPY_N = 4  # absolute pitches per copy n-gram
COPY_SHARE = 0.8  # an AI phrase with this share of its pitch 4-grams in the performer's phrase is a copy
REGISTER_S = 8.0  # the performer's median pitch over the 8 s before each AI onset
PULSE_TEMPO_S = 4.0  # pulse: the performer's grid (engine.tokens.pulse) from his attacks in the 4 s before each AI attack
VELOCITY_STEP_S = 2.0
VELOCITY_LOOKBACK_S = 4.0
MIN_VELOCITY_STEPS = 5


def by_onset(notes: Sequence[Note]) -> list[Note]:
    return sorted(notes, key=lambda n: (n.start_s, n.pitch))


def phrases(notes: Sequence[Note], gap_s: float) -> list[list[Note]]:
    """Notes in onset order, split where an onset comes `gap_s` or more after the latest release
    of all notes before it (a held note keeps its phrase going)."""
    out: list[list[Note]] = []
    release_s = -math.inf
    for n in by_onset(notes):
        if not out or n.start_s - release_s >= gap_s:
            out.append([])
            release_s = n.end_s
        out[-1].append(n)
        release_s = max(release_s, n.end_s)
    return out


def _end(phrase: Sequence[Note]) -> float:
    return max(n.end_s for n in phrase)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def hammer(ai: Sequence[Note]) -> float | None:
    """Share of AI notes whose onset comes less than 50 ms after the release of the AI's previous
    note of the same pitch (a still-sounding one counts too: its gap is negative)."""
    released: dict[int, float] = {}
    hits = 0
    notes = by_onset(ai)
    for n in notes:
        if n.pitch in released and n.start_s - released[n.pitch] < HAMMER_GAP_S:
            hits += 1
        released[n.pitch] = max(released.get(n.pitch, -math.inf), n.end_s)
    return _ratio(hits, len(notes))


def key_agreement(performer: Sequence[Note], ai: Sequence[Note], mode: str) -> dict[str, float | int | None]:
    """`key_compat`: share of judged units whose AI key is compatible (circle of fifths) with the
    performer's; `in_scale`: duration-weighted share of the AI notes of units with a performer
    key that lie in that key's scale; `key_units`: units with both keys found.

    A unit is, in call-and-response, an AI phrase (0.8 s gaps) against the performer's notes
    sounding in the 8 s before it; otherwise the AI notes with onsets in an 8 s window (grid at
    multiples of 8 s over the AI's span) against the performer's notes sounding from 4 s before
    the window to its end. Units with fewer than 4 AI notes are skipped, in every mode. AI notes
    weigh their whole duration; performer notes only their part inside the context.
    """
    ai = by_onset(ai)
    if not ai:
        return {"key_compat": None, "in_scale": None, "key_units": 0}
    units: list[tuple[list[Note], float, float]] = []  # (AI notes, context from, context to)
    if mode == "call-and-response":
        for phrase in phrases(ai, AI_PHRASE_GAP_S):
            units.append((phrase, phrase[0].start_s - KEY_CALL_S, phrase[0].start_s))
    else:
        starts = [n.start_s for n in ai]
        t = math.floor(starts[0] / KEY_WINDOW_S) * KEY_WINDOW_S
        while t <= starts[-1]:
            lo, hi = bisect.bisect_left(starts, t), bisect.bisect_left(starts, t + KEY_WINDOW_S)
            units.append((ai[lo:hi], t - KEY_CONTEXT_BEFORE_S, t + KEY_WINDOW_S))
            t += KEY_WINDOW_S
    p_start = np.array([n.start_s for n in performer], dtype=float)
    p_end = np.array([n.end_s for n in performer], dtype=float)
    p_pitch = np.array([n.pitch for n in performer], dtype=int)
    agree = both = 0
    in_s = total_s = 0.0
    for notes, lo, hi in units:
        if len(notes) < MIN_KEY_NOTES:
            continue
        inside = (p_start < hi) & (p_end > lo)
        weights = np.minimum(p_end[inside], hi) - np.maximum(p_start[inside], lo)
        performer_key = find_key(p_pitch[inside], weights)
        if performer_key is None:
            continue
        ai_key = find_key([n.pitch for n in notes], [n.duration_s for n in notes])
        if ai_key is not None:
            both += 1
            agree += compatible(ai_key, performer_key)
        scale = performer_key.scale
        in_s += sum(n.duration_s for n in notes if n.pitch % 12 in scale)
        total_s += sum(n.duration_s for n in notes)
    return {"key_compat": _ratio(agree, both), "in_scale": _ratio(in_s, total_s), "key_units": both}


def notes_per_s(notes: Sequence[Note]) -> float | None:
    """Notes per second of playing: the seconds are the sum of the spans (first onset to last
    release) of the player's phrases split at 0.8 s silences."""
    spans = sum(_end(p) - p[0].start_s for p in phrases(notes, AI_PHRASE_GAP_S))
    return _ratio(len(notes), spans)


def density(performer: Sequence[Note], ai: Sequence[Note]) -> dict[str, float | None]:
    """The AI's notes per second of playing over the performer's."""
    ai_rate, performer_rate = notes_per_s(ai), notes_per_s(performer)
    ratio = _ratio(ai_rate, performer_rate) if ai_rate is not None and performer_rate is not None else None
    return {"density": ratio, "ai_notes_per_s": ai_rate, "performer_notes_per_s": performer_rate}


def answers(performer: Sequence[Note], ai: Sequence[Note], until_s: float | None = None) -> dict[str, float | int | None]:
    """Share of the performer's phrases (1.5 s gaps) followed by an AI onset no later than 3 s
    after the phrase's last release (and not before it). A phrase the duet ends too soon after to
    tell (under 3 s to `until_s`, by default the last release of either player: a performance cut
    at a time limit, or a recording stopped as he lifted his hands) is not judged unless the AI
    answered it: `performer_phrases` counts the judged ones, `unjudged_phrases` the others."""
    onsets = sorted(n.start_s for n in ai)
    if until_s is None:
        until_s = max((n.end_s for n in (*performer, *ai)), default=0.0)
    answered = judged = 0
    for phrase in phrases(performer, PERFORMER_PHRASE_GAP_S):
        end_s = _end(phrase)
        i = bisect.bisect_left(onsets, end_s)
        hit = i < len(onsets) and onsets[i] - end_s <= ANSWER_WITHIN_S
        if hit or end_s + ANSWER_WITHIN_S <= until_s:
            judged += 1
            answered += hit
    unjudged = len(phrases(performer, PERFORMER_PHRASE_GAP_S)) - judged
    return {"answers": _ratio(answered, judged), "performer_phrases": judged, "unjudged_phrases": unjudged}


def answer_length(performer: Sequence[Note], ai: Sequence[Note]) -> dict[str, float | int | None]:
    """Whether the AI's answers are phrases. An answer is what the AI plays between two of the
    performer's onsets; it is cut in on when his next onset comes before its last note ends +
    0.8 s. Of those not cut in on, `answer_notes` is the median count of notes and
    `short_answers` the share with SHORT_ANSWER_NOTES or fewer (scraps); `cut_in` is the share
    of answers cut in on, `answer_notes_all` the median notes of every answer. (In accompany and continuous, where both play at once, nearly every
    "answer" is cut in on: the figures are for call-and-response.)"""
    onsets = sorted(n.start_s for n in performer)
    answers: dict[int, list[Note]] = {}
    for n in by_onset(ai):
        answers.setdefault(bisect.bisect_right(onsets, n.start_s), []).append(n)
    whole: list[int] = []
    cut = 0
    for i, answer in answers.items():
        if i < len(onsets) and onsets[i] < _end(answer) + AI_PHRASE_GAP_S:
            cut += 1
        else:
            whole.append(len(answer))
    every = [len(answer) for answer in answers.values()]
    return {"answer_notes": float(statistics.median(whole)) if whole else None,
            "short_answers": _ratio(sum(n <= SHORT_ANSWER_NOTES for n in whole), len(whole)),
            "cut_in": _ratio(cut, len(answers)), "whole_answers": len(whole),
            "answer_notes_all": float(statistics.median(every)) if every else None}


def _grams(seq: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def motif_reuse(performer: Sequence[Note], ai: Sequence[Note]) -> dict[str, float | int | None]:
    """How much each AI phrase (0.8 s gaps) develops the performer's phrase before it.

    Both sides are reduced to their top voice (`top_voice`). The performer's phrase is his last
    phrase (1.5 s gaps) that began before the AI phrase, cut to its notes with onsets before the
    AI phrase's first onset (what the AI could have heard). `motif_reuse`: mean over AI phrases of
    the share of the phrase's n-grams of 3 successive intervals (semitones, so transposition-
    invariant) that occur in the performer's phrase. `copy_rate`: share of AI phrases with at
    least 80 % of their 4-grams of absolute pitches in the performer's phrase. AI phrases where
    either side has fewer than four melody notes are not judged (`motif_phrases` counts the rest).
    """
    calls = phrases(performer, PERFORMER_PHRASE_GAP_S)
    call_starts = [c[0].start_s for c in calls]
    reuse: list[float] = []
    copies = 0
    for phrase in phrases(ai, AI_PHRASE_GAP_S):
        start_s = phrase[0].start_s
        i = bisect.bisect_left(call_starts, start_s) - 1
        if i < 0:
            continue
        heard = [n.pitch for n in top_voice(n for n in calls[i] if n.start_s < start_s)]
        played = [n.pitch for n in top_voice(phrase)]
        if len(heard) < MOTIF_N + 1 or len(played) < MOTIF_N + 1:
            continue
        heard_steps = set(_grams(np.diff(heard).tolist(), MOTIF_N))
        played_steps = _grams(np.diff(played).tolist(), MOTIF_N)
        reuse.append(sum(g in heard_steps for g in played_steps) / len(played_steps))
        heard_pitches = set(_grams(heard, COPY_N))
        played_pitches = _grams(played, COPY_N)
        copies += sum(g in heard_pitches for g in played_pitches) >= COPY_SHARE * len(played_pitches)
    return {"motif_reuse": float(np.mean(reuse)) if reuse else None,
            "copy_rate": _ratio(copies, len(reuse)), "motif_phrases": len(reuse)}


def register(performer: Sequence[Note], ai: Sequence[Note]) -> float | None:
    """Share of AI notes below the median pitch of the performer's notes with onsets in the 8 s
    before the AI note's onset; AI notes with no such performer notes are not judged."""
    performer = by_onset(performer)
    starts = [n.start_s for n in performer]
    pitches = [n.pitch for n in performer]
    below = judged = 0
    for n in ai:
        lo, hi = bisect.bisect_left(starts, n.start_s - REGISTER_S), bisect.bisect_left(starts, n.start_s)
        if hi > lo:
            judged += 1
            below += n.pitch < statistics.median(pitches[lo:hi])
    return _ratio(below, judged)


def polyphony(ai: Sequence[Note]) -> float | None:
    """Mean number of AI notes sounding at each AI onset (the new note and any struck with it
    included; a note released exactly then is not)."""
    if not ai:
        return None
    starts = np.sort([n.start_s for n in ai])
    ends = np.sort([n.end_s for n in ai])
    sounding = np.searchsorted(starts, starts, side="right") - np.searchsorted(ends, starts, side="right")
    return float(sounding.mean())


def attacks(notes: Sequence[Note]) -> list[list[Note]]:
    """Notes grouped by onset: a note within CHORD_S of an attack's first onset joins it."""
    out: list[list[Note]] = []
    for n in by_onset(notes):
        if out and n.start_s - out[-1][0].start_s < CHORD_S:
            out[-1].append(n)
        else:
            out.append([n])
    return out


def chord_notes(ai: Sequence[Note]) -> float | None:
    """Mean notes struck together per AI attack (1: single notes; an accompanist's voicings, 3-4)."""
    groups = attacks(ai)
    return _ratio(sum(len(g) for g in groups), len(groups))


def on_pulse(performer: Sequence[Note], ai: Sequence[Note]) -> dict[str, float | int | None]:
    """Share of AI attacks on the performer's pulse: his grid (`engine.tokens.pulse`: his beat in
    two, anchored at his last attack) from his attacks in the 4 s before; AI attacks while he keeps
    no pulse (rubato, runs finer than the grid, silence) are not judged: `pulse_attacks` counts
    the judged. Random attacks score 0.25."""
    his = [g[0].start_s for g in attacks(performer)]
    near = judged = 0
    for group in attacks(ai):
        t = group[0].start_s
        lo, hi = bisect.bisect_left(his, t - PULSE_TEMPO_S), bisect.bisect_right(his, t - CHORD_S)
        grid = pulse_grid(his[lo:hi])
        if grid is None:
            continue
        judged += 1
        near += grid.on_grid(t)
    return {"on_pulse": _ratio(near, judged), "pulse_attacks": judged}


def velocity_follow(performer: Sequence[Note], ai: Sequence[Note]) -> float | None:
    """Pearson correlation over 2 s steps t (a grid at multiples of 2 s) between the AI's mean
    onset velocity in [t, t+2) and the performer's in [t-4, t), over steps where both played;
    None with fewer than 5 such steps or when either side never changes."""
    if not ai or not performer:
        return None
    p_start = np.array([n.start_s for n in performer])
    p_vel = np.array([n.velocity for n in performer], dtype=float)
    a_start = np.array([n.start_s for n in ai])
    a_vel = np.array([n.velocity for n in ai], dtype=float)
    pairs = []
    for t in np.arange(math.floor(a_start.min() / VELOCITY_STEP_S) * VELOCITY_STEP_S, a_start.max() + 1e-9, VELOCITY_STEP_S):
        mine = (a_start >= t) & (a_start < t + VELOCITY_STEP_S)
        heard = (p_start >= t - VELOCITY_LOOKBACK_S) & (p_start < t)
        if mine.any() and heard.any():
            pairs.append((a_vel[mine].mean(), p_vel[heard].mean()))
    if len(pairs) < MIN_VELOCITY_STEPS:
        return None
    a, p = np.array(pairs).T
    if a.std() == 0 or p.std() == 0:
        return None
    return float(np.corrcoef(a, p)[0, 1])


def velocity_stats(performer: Sequence[Note], ai: Sequence[Note]) -> dict[str, float | None]:
    """Mean and (population) standard deviation of each player's velocities."""
    out: dict[str, float | None] = {}
    for name, notes in (("ai", ai), ("performer", performer)):
        v = np.array([n.velocity for n in notes], dtype=float)
        out[f"{name}_velocity_mean"] = float(v.mean()) if len(v) else None
        out[f"{name}_velocity_std"] = float(v.std()) if len(v) else None
    return out
