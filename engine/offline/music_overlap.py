"""MGEval-style overlapping areas (Yang & Lerch 2018) between two players' feature distributions,
with the human ceiling and the random floor that put them in scale."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine.events import AI, Note
from engine.offline.music_figures import by_onset

SEGMENT_S = 4.0  # features are taken per 4 s segment (a grid at multiples of 4 s) ...
MIN_SEGMENT_NOTES = 2  # ... from segments where the player has at least two onsets
# Fixed bins, so an area means the same in every session. Values past the last edge fall in the last bin.
BINS: dict[str, np.ndarray] = {
    "pitch_class": np.arange(13) - 0.5,  # one bin per pitch class
    "pitch_range": np.arange(0, 50, 2) - 0.5,  # semitones, 2 per bin, 0..47
    "ioi": np.concatenate(([0.0], np.geomspace(0.02, 4.0, 16))),  # seconds between successive onsets
    "note_length": np.concatenate(([0.0], np.geomspace(0.03, 8.0, 16))),  # seconds
    "velocity": np.arange(0, 129, 8) + 0.5,  # 8 velocities per bin
}
FEATURES = tuple(BINS)


def segment_features(notes: Sequence[Note]) -> dict[str, np.ndarray]:
    """Per-note and per-segment feature values, from segments with at least two onsets:
    pitch classes, velocities and lengths (one per note), inter-onset intervals between
    successive onsets within a segment (0 inside a chord), pitch range (one per segment)."""
    segments: dict[int, list[Note]] = {}
    for n in by_onset(notes):
        segments.setdefault(math.floor(n.start_s / SEGMENT_S), []).append(n)
    values: dict[str, list[float]] = {name: [] for name in FEATURES}
    for segment in segments.values():
        if len(segment) < MIN_SEGMENT_NOTES:
            continue
        pitches = [n.pitch for n in segment]
        values["pitch_class"] += [p % 12 for p in pitches]
        values["pitch_range"].append(max(pitches) - min(pitches))
        values["ioi"] += np.diff([n.start_s for n in segment]).tolist()
        values["note_length"] += [n.duration_s for n in segment]
        values["velocity"] += [n.velocity for n in segment]
    return {name: np.asarray(v, dtype=float) for name, v in values.items()}


def overlapping_area(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> float | None:
    """Sum over the bins of the smaller of the two normalised histograms: 1 for identical
    distributions, 0 for disjoint ones; None when either side has no values."""
    if len(a) == 0 or len(b) == 0:
        return None
    ha, _ = np.histogram(np.clip(a, edges[0], edges[-1]), bins=edges)
    hb, _ = np.histogram(np.clip(b, edges[0], edges[-1]), bins=edges)
    return float(np.minimum(ha / ha.sum(), hb / hb.sum()).sum())


def overlapping_areas(performer: Sequence[Note], ai: Sequence[Note]) -> dict[str, float | None]:
    """`oa_<feature>` for each feature and `oa_mean`, the mean of those found."""
    fa, fb = segment_features(ai), segment_features(performer)
    out = {f"oa_{name}": overlapping_area(fa[name], fb[name], BINS[name]) for name in FEATURES}
    found = [v for v in out.values() if v is not None]
    out["oa_mean"] = float(np.mean(found)) if found else None
    return out


def random_notes(like: Sequence[Note], seed: int = 0) -> list[Note]:
    """As many notes as `like`, uniformly random within its time span (onsets) and its pitch,
    velocity and duration ranges."""
    if not like:
        return []
    rng = np.random.default_rng(seed)
    n = len(like)
    starts = rng.uniform(min(x.start_s for x in like), max(x.start_s for x in like), n)
    pitches = rng.integers(min(x.pitch for x in like), max(x.pitch for x in like) + 1, n)
    velocities = rng.integers(min(x.velocity for x in like), max(x.velocity for x in like) + 1, n)
    lengths = rng.uniform(min(x.duration_s for x in like), max(x.duration_s for x in like), n)
    return by_onset(Note(float(s), float(s + d), int(p), int(v), AI)
                    for s, d, p, v in zip(starts, lengths, pitches, velocities))


def overlap_baselines(performer: Sequence[Note], ai: Sequence[Note], seed: int = 0) -> dict[str, dict[str, float | None]]:
    """`ceiling`: the performer's first half of notes (onset order) against his second half;
    `floor`: `random_notes` shaped like the AI's (seeded) against the performer."""
    ordered = by_onset(performer)
    half = len(ordered) // 2
    return {"ceiling": overlapping_areas(ordered[:half], ordered[half:]),
            "floor": overlapping_areas(performer, random_notes(ai, seed))}
