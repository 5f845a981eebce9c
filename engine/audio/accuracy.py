"""How well a transcription matches the MIDI it came from, scored with mir_eval as piano
transcription papers score MAESTRO: onsets within 50 ms, offsets within 20% of the note (at least
50 ms), velocities after the best linear rescaling; both sides with the sustain pedal folded in."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from engine.audio.extra import require
from engine.events import Note
from engine.midi.midifile import load_midi_events
from engine.midi.notes import notes_from_events

ONSET_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Accuracy:
    """F1 scores (0..1) of estimated notes against reference notes, and the counts."""

    onset_f1: float  # pitch and onset right
    onset_offset_f1: float  # and the (pedalled) note end
    velocity_f1: float  # pitch, onset and velocity right
    onset_precision: float
    onset_recall: float
    n_reference: int
    n_estimated: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def score_notes(reference: Sequence[Note], estimated: Sequence[Note]) -> Accuracy:
    """mir_eval's note scores of `estimated` against `reference` (Notes with the pedal folded in)."""
    np = require("numpy", "scoring a transcription")
    transcription = require("mir_eval.transcription", "scoring a transcription")
    transcription_velocity = require("mir_eval.transcription_velocity", "scoring a transcription")

    def arrays(notes: Sequence[Note]):
        intervals = np.array([[n.start_s, max(n.end_s, n.start_s + 1e-3)] for n in notes]).reshape(-1, 2)
        hz = np.array([440.0 * 2 ** ((n.pitch - 69) / 12) for n in notes])
        return intervals, hz, np.array([float(n.velocity) for n in notes])

    if not reference or not estimated:
        return Accuracy(0.0, 0.0, 0.0, 0.0, 0.0, len(reference), len(estimated))
    ref_iv, ref_hz, ref_vel = arrays(reference)
    est_iv, est_hz, est_vel = arrays(estimated)
    precision, recall, onset_f1, _ = transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=ONSET_TOLERANCE_S, offset_ratio=None)
    _, _, offset_f1, _ = transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=ONSET_TOLERANCE_S)
    _, _, velocity_f1, _ = transcription_velocity.precision_recall_f1_overlap(
        ref_iv, ref_hz, ref_vel, est_iv, est_hz, est_vel, onset_tolerance=ONSET_TOLERANCE_S, offset_ratio=None)
    return Accuracy(float(onset_f1), float(offset_f1), float(velocity_f1), float(precision), float(recall),
                    len(reference), len(estimated))


def score_files(reference: Path, estimated: Path, *, up_to_s: float | None = None) -> Accuracy:
    """`score_notes` of two MIDI files, all of each as one piano (pedal folded in); with
    `up_to_s`, only the notes that start before it on both sides (a clip of a longer piece)."""
    def notes(path: Path) -> list[Note]:
        found = notes_from_events(load_midi_events(path))
        return [n for n in found if up_to_s is None or n.start_s < up_to_s]

    return score_notes(notes(reference), notes(estimated))
