"""Seeded stand-in performers written as MIDI files, for duets a benchmark or a soak can repeat:
one who plays chord-tone phrases with pauses, one who states motifs and develops them."""
from __future__ import annotations

import random
from pathlib import Path

from engine.events import PERFORMER, Note
from engine.midi.midifile import write_duet

MOTIFS = ((2, 2, -4, 5), (-1, -2, 3, 4), (4, 3, -2, -5), (7, -2, -1, -2), (-5, 2, 2, 1))


def phrase_performer(path: Path, seconds: float, seed: int = 0) -> Path:
    """Phrases of 3-12 notes (chord tones, swung eighths), 0.3-2.5 s pauses, some held chords."""
    rng = random.Random(seed)
    notes, t = [], 0.0
    while t < seconds:
        root = rng.choice((48, 50, 53, 55, 57, 60))
        if rng.random() < 0.2:  # a held chord
            length = rng.uniform(0.8, 2.0)
            notes += [Note(t, t + length, root + i, rng.randint(50, 80), PERFORMER) for i in (0, 4, 7, 11)]
            t += length
        for i in range(rng.randint(3, 12)):
            step = 0.32 if i % 2 == 0 else 0.18
            pitch = root + 12 + rng.choice((0, 2, 4, 5, 7, 9, 11, 12))
            notes.append(Note(t, t + step * 0.9, pitch, rng.randint(55, 100), PERFORMER))
            t += step
        t += rng.uniform(0.3, 2.5)
    write_duet(path, notes)
    return path


def motif_performer(path: Path, seconds: float, seed: int = 0) -> Path:
    """Phrases that state a motif (one of MOTIFS: four melodic steps) from a new note and
    repeat it once, sometimes a step higher; 1.8-3 s pauses between phrases (room to answer)."""
    rng = random.Random(seed)
    notes, t = [], 0.0
    while t < seconds:
        motif, start = rng.choice(MOTIFS), rng.randint(62, 74)
        step_s = rng.choice((0.2, 0.25, 0.3))
        for repeat in range(2):
            pitch = start + (2 if repeat and rng.random() < 0.5 else 0)
            for i in range(len(motif) + 1):
                notes.append(Note(t, t + step_s * 0.85, pitch, rng.randint(60, 95), PERFORMER))
                t += step_s
                if i < len(motif):
                    pitch += motif[i]
            t += step_s
        t += rng.uniform(1.8, 3.0)
    write_duet(path, notes)
    return path
