"""Conditions that open a token sequence (genre, tempo, key, density), their buckets, and
their estimation from the notes themselves."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from engine.events import Note
from engine.tokens.keys import find_key

GENRES = ("jazz-comping", "classical-piano", "folk", "performance", "unknown")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# 12 major keys ("C"), then 12 minor keys ("Cm"); sharps only, so every name is one token.
KEYS = PITCH_CLASSES + tuple(f"{pc}m" for pc in PITCH_CLASSES)
# Bucket edges: a value v falls in bucket i where edges[i-1] <= v < edges[i].
TEMPO_EDGES_BPM = (66, 80, 96, 112, 132, 156, 184)
DENSITY_EDGES_NPS = (1, 2, 4, 6, 9, 13)

# Krumhansl & Kessler (1982) key profiles, tonic first.

_CHORD_SPREAD_S = 0.04  # onsets closer than this count as one attack (a rolled chord)
_MIN_BEAT_S, _MAX_BEAT_S = 60 / 200, 60 / 50
_LAG_STEP_S = 0.005
_LAG_SIGMA_S = 0.025  # timing slack of a human pulse
_PRIOR_BEAT_S, _PRIOR_OCTAVES = 0.5, 1.0  # favour ~120 bpm among a pulse's multiples


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the model is told before the first note; None means "not given".

    `genre` is one of GENRES, `key` one of KEYS, `tempo_bpm` and `density_nps`
    (notes per second) are raw values that the tokenizer puts into buckets.
    """

    genre: str | None = None
    tempo_bpm: float | None = None
    key: str | None = None
    density_nps: float | None = None

    def __post_init__(self) -> None:
        if self.genre is not None and self.genre not in GENRES:
            raise ValueError(f"unknown genre {self.genre!r}; expected one of {', '.join(GENRES)}")
        if self.key is not None and self.key not in KEYS:
            raise ValueError(f"unknown key {self.key!r}; expected e.g. 'C', 'F#', 'Gm'")


def condition_tokens(conditions: Conditions) -> list[str]:
    """Token names of the fields given, in sequence order: genre, tempo, key, density."""
    c, names = conditions, []
    if c.genre is not None:
        names.append(f"Genre_{c.genre}")
    if c.tempo_bpm is not None:
        names.append(f"Tempo_{TEMPO_BUCKETS[bucket_index(c.tempo_bpm, TEMPO_EDGES_BPM)]}")
    if c.key is not None:
        names.append(f"Key_{c.key}")
    if c.density_nps is not None:
        names.append(f"Density_{DENSITY_BUCKETS[bucket_index(c.density_nps, DENSITY_EDGES_NPS)]}")
    return names


def bucket_names(edges: Sequence[float]) -> tuple[str, ...]:
    """Readable token values for the buckets between `edges`: "lt66", "66-80", ..., "ge184"."""
    names = [f"lt{edges[0]}"]
    names += [f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:])]
    names.append(f"ge{edges[-1]}")
    return tuple(names)


def bucket_index(value: float, edges: Sequence[float]) -> int:
    return bisect.bisect_right(edges, value)


TEMPO_BUCKETS = bucket_names(TEMPO_EDGES_BPM)
DENSITY_BUCKETS = bucket_names(DENSITY_EDGES_NPS)
# Every condition token, in vocabulary order (they follow PAD, BOS, EOS).
CONDITION_TOKENS = (
    tuple(f"Genre_{g}" for g in GENRES)
    + tuple(f"Tempo_{b}" for b in TEMPO_BUCKETS)
    + tuple(f"Key_{k}" for k in KEYS)
    + tuple(f"Density_{b}" for b in DENSITY_BUCKETS)
)


def conditions_from_notes(
    notes: Sequence[Note], genre: str | None = None, span_s: float | None = None
) -> Conditions:
    """Estimate tempo, key and density from the notes; fields that cannot be told are None.

    `span_s` is the length of the window the notes came from; by default the time from
    the first onset to the last.
    """
    if not notes:
        return Conditions(genre=genre)
    starts = [n.start_s for n in notes]
    if span_s is None:
        span_s = max(starts) - min(starts)
    density = len(notes) / max(span_s, 1.0)
    return Conditions(genre=genre, tempo_bpm=estimate_tempo_bpm(starts), key=estimate_key(notes), density_nps=density)


def estimate_key(notes: Sequence[Note]) -> str | None:
    """The key token's name (`KEYS`) of the notes: Krumhansl-Schmuckler on duration-weighted
    pitch classes (`engine.tokens.keys.find_key`); None when no key can be told."""
    key = find_key([n.pitch for n in notes], [max(n.end_s - n.start_s, 0.0) for n in notes])
    return None if key is None else KEYS[key.tonic + 12 * key.minor]


def estimate_tempo_bpm(onsets_s: Sequence[float]) -> float | None:
    """The beat period that most onset pairs are a multiple of, leaning towards 120 bpm.

    A smoothed histogram of the intervals between all pairs of attacks that could be a
    beat (50..200 bpm), weighted by a log-normal prior around 0.5 s so that among a pulse
    and its multiples the mid-tempo one wins. Needs four distinct attacks.
    """
    attacks: list[float] = []
    for t in sorted(onsets_s):
        if not attacks or t - attacks[-1] >= _CHORD_SPREAD_S:
            attacks.append(t)
    if len(attacks) < 4:
        return None
    times = np.array(attacks)
    diffs = (times[None, :] - times[:, None]).ravel()
    diffs = diffs[(diffs > _MIN_BEAT_S - 3 * _LAG_SIGMA_S) & (diffs < _MAX_BEAT_S + 3 * _LAG_SIGMA_S)]
    if diffs.size == 0:
        return None
    lags = np.arange(_MIN_BEAT_S, _MAX_BEAT_S + _LAG_STEP_S / 2, _LAG_STEP_S)
    support = np.exp(-0.5 * ((diffs[None, :] - lags[:, None]) / _LAG_SIGMA_S) ** 2).sum(axis=1)
    prior = np.exp(-0.5 * (np.log2(lags / _PRIOR_BEAT_S) / _PRIOR_OCTAVES) ** 2)
    return float(60.0 / lags[int(np.argmax(support * prior))])


def fill_conditions(given: Conditions | None, context: list[Note], span_s: float) -> Conditions | None:
    """The given conditions, with the fields they leave open estimated from the context."""
    if not context:
        return given
    estimated = conditions_from_notes(context, span_s=span_s)
    if given is None:
        return estimated
    return replace(
        given,
        tempo_bpm=given.tempo_bpm if given.tempo_bpm is not None else estimated.tempo_bpm,
        key=given.key if given.key is not None else estimated.key,
        density_nps=given.density_nps if given.density_nps is not None else estimated.density_nps,
    )
