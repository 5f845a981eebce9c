"""Augmentation of a piece's notes for training: transposition, tempo stretch, touch, humanizing."""
from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import replace
from typing import Iterable

from engine.events import Note

PIANO_LOW, PIANO_HIGH = 21, 108


def transpose(notes: Iterable[Note], semitones: int, *, low: int = PIANO_LOW, high: int = PIANO_HIGH) -> list[Note]:
    """Every pitch moved by `semitones`; a note that leaves `low..high` is dropped."""
    return [replace(n, pitch=n.pitch + semitones) for n in notes if low <= n.pitch + semitones <= high]


def transpose_bounds(notes: Iterable[Note], *, low: int = PIANO_LOW, high: int = PIANO_HIGH) -> tuple[int, int]:
    """`(down, up)`: the furthest shifts (down <= 0 <= up) that drop no note; (0, 0) for none."""
    pitches = [n.pitch for n in notes]
    if not pitches:
        return 0, 0
    return min(0, low - min(pitches)), max(0, high - max(pitches))


def stretch(notes: Iterable[Note], factor: float) -> list[Note]:
    """Tempo change: every time multiplied by `factor` (1.1 is 10% slower)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"stretch factor must be a positive number, not {factor!r}")
    return [replace(n, start_s=n.start_s * factor, end_s=n.end_s * factor) for n in notes]


def touch(notes: Iterable[Note], scale: float, shift: float) -> list[Note]:
    """Another player's touch, or another keyboard's velocity curve: every velocity spread
    (`scale` > 1) or narrowed around 64, then moved by `shift`, kept in 1..127."""
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(shift)):
        raise ValueError(f"touch needs a positive scale and a finite shift, not {scale!r}, {shift!r}")
    return [replace(n, velocity=max(1, min(127, round(64 + (n.velocity - 64) * scale + shift)))) for n in notes]


def humanize(notes: Iterable[Note], rng: random.Random, timing_ms: float = 15.0, velocity_sd: float = 8.0) -> list[Note]:
    """Score data made to sound played; the same `rng` state gives the same result.

    Notes starting together move together by N(0, timing_ms) so chords stay chords, and each
    note adds its own N(0, timing_ms / 4) spread; velocities move by N(0, velocity_sd). Every
    draw is clipped at two standard deviations, so no onset moves more than 2.5 * timing_ms
    and no velocity more than 2 * velocity_sd (then into 1..127). Durations are kept, except
    that a note is cut where the next note of its pitch now starts; nothing starts before 0.
    """
    ordered = sorted(notes, key=lambda n: (n.start_s, n.pitch, n.end_s, n.velocity))
    sd_s, spread_s = timing_ms / 1000, timing_ms / 4000
    group_shift: dict[float, float] = {}
    moved = []
    for n in ordered:
        key = round(n.start_s, 6)
        if key not in group_shift:
            group_shift[key] = _clipped_gauss(rng, sd_s)
        start_s = max(0.0, n.start_s + group_shift[key] + _clipped_gauss(rng, spread_s))
        velocity = round(n.velocity + _clipped_gauss(rng, velocity_sd))
        moved.append(replace(n, start_s=start_s, end_s=start_s + n.duration_s, velocity=max(1, min(127, velocity))))
    by_pitch: dict[int, list[int]] = defaultdict(list)
    for j in sorted(range(len(moved)), key=lambda j: moved[j].start_s):
        by_pitch[moved[j].pitch].append(j)
    for indices in by_pitch.values():
        for a, b in zip(indices, indices[1:]):
            if moved[a].end_s > moved[b].start_s:
                moved[a] = replace(moved[a], end_s=max(moved[b].start_s, moved[a].start_s + 0.005))
    return sorted(moved, key=lambda n: (n.start_s, n.pitch, n.end_s))


def _clipped_gauss(rng: random.Random, sd: float) -> float:
    return max(-2 * sd, min(2 * sd, rng.gauss(0.0, sd))) if sd > 0 else 0.0
