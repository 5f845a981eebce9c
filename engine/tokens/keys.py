"""Keys of a passage: Krumhansl-Schmuckler key finding (for the key condition, listening and
the musical figures), the scale of a key, and the circle of fifths that says which keys agree."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor plus the raised 7th (harmonic minor's leading tone)
PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# The 24 rotated profiles, majors first so a tie resolves to the major key, C first.
_TEMPLATES = np.array([np.roll(profile, tonic) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)])
_TEMPLATES_Z = (_TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)) / _TEMPLATES.std(axis=1, keepdims=True)


class Key(NamedTuple):
    tonic: int  # pitch class 0..11, C = 0
    minor: bool

    @property
    def name(self) -> str:
        return PITCH_CLASS_NAMES[self.tonic] + ("m" if self.minor else "")

    @property
    def scale(self) -> frozenset[int]:
        """Pitch classes of the major scale, or of natural minor with the raised 7th."""
        steps = MINOR_STEPS if self.minor else MAJOR_STEPS
        return frozenset((self.tonic + step) % 12 for step in steps)

    @property
    def fifths_place(self) -> int:
        """Place on the circle of fifths (C = 0, G = 1, ...); a minor key sits at its relative major's."""
        relative_major = (self.tonic + 3) % 12 if self.minor else self.tonic
        return relative_major * 7 % 12


def pitch_class_profile(pitches: Sequence[int], weights: Sequence[float]) -> np.ndarray:
    """Total weight (seconds) of each pitch class, shape (12,)."""
    return np.bincount(np.asarray(pitches, dtype=int) % 12, weights=np.asarray(weights, dtype=float), minlength=12)


def find_key(pitches: Sequence[int], weights: Sequence[float]) -> Key | None:
    """Krumhansl-Schmuckler: the best of the 24 keys by Pearson correlation of the weighted
    pitch-class profile with the rotated Krumhansl-Kessler profiles. None when the profile is
    empty or flat (no key can be told)."""
    if len(pitches) == 0:
        return None
    profile = pitch_class_profile(pitches, weights)
    if profile.sum() <= 0 or profile.std() == 0:
        return None
    z = (profile - profile.mean()) / profile.std()
    best = int(np.argmax(_TEMPLATES_Z @ z))  # argmax keeps the first of equals
    return Key(best % 12, best >= 12)


def compatible(a: Key, b: Key) -> bool:
    """The same place on the circle of fifths or a neighbouring one."""
    return (a.fifths_place - b.fifths_place) % 12 in (0, 1, 11)
