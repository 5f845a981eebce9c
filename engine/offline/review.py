"""Musical figures of a duet (issue 9: every change to how the AI plays is judged by them): one
flat JSON-safe dict from two note lists or a recorded duet file, and the performer's own column."""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from engine.events import AI, PERFORMER, PLAYER_NAMES, Note
from engine.offline import music_figures as figures
from engine.offline.music_overlap import overlapping_areas
from engine.presets.files import load_preset
from engine.presets.schema import MODES, PresetError
from engine.training.midi_files import read_tracks as read_tracks_of

log = logging.getLogger(__name__)

SELF_BLOCK_S = 8.0  # the self column: each 8 s block of the performer against the block before
_SELF_PAIR_SPACING_S = 96.0  # pairs laid apart by this (a multiple of every figure's grid) so none meet

Figures = dict[str, float | int | None]


def _mode(mode: str) -> str:
    """The plain string of a mode (a StrEnum compares equal to its value)."""
    for known in MODES:
        if mode == known:
            return known
    raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def _json_safe(value: float | int | bool | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral):  # bools and numpy integers too
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def review(performer: Sequence[Note], ai: Sequence[Note], mode: str) -> Figures:
    """The figures of one duet; the `player` fields of the notes are not looked at.

    Keys (None where a figure cannot be told, never NaN):
      performer_notes, ai_notes: counts.
      hammer: share of AI notes re-striking a pitch < 50 ms after the AI released it.
      key_compat: share of units (windows or AI phrases) whose AI key agrees with the performer's.
      in_scale: duration-weighted share of those AI notes inside the performer's key's scale.
      key_units: units with both keys found.
      density: AI notes per second of playing over the performer's (also ai_notes_per_s,
        performer_notes_per_s).
      answers: share of the performer's phrases with an AI onset within 3 s after their end;
        performer_phrases: how many were judged (one the duet ends on too soon is not, unless
        answered: unjudged_phrases).
      answer_notes: median notes of the AI's answers (what it plays between two of his onsets)
        that he did not cut in on (his next onset after their end + 0.8 s); short_answers: share
        of those with 5 notes or fewer; cut_in: share of answers cut in on; whole_answers: how
        many were not; answer_notes_all: median notes of every answer.
      motif_reuse: mean share of an AI phrase's interval 3-grams found in the performer's
        previous phrase; copy_rate: share of AI phrases that copy it (pitch 4-grams);
        motif_phrases: AI phrases judged.
      register: share of AI notes below the performer's median pitch of the last 8 s.
      polyphony: mean AI notes sounding at an AI onset.
      chord_notes: mean AI notes struck together per attack.
      on_pulse: share of AI attacks on the performer's pulse (his beat in two, from his last
        attack; random attacks: 0.25); pulse_attacks: attacks judged.
      velocity_follow: correlation of the AI's velocity with the performer's 4 s before.
      ai_velocity_mean/std, performer_velocity_mean/std.
      oa_pitch_class, oa_pitch_range, oa_ioi, oa_note_length, oa_velocity, oa_mean:
        MGEval-style overlapping areas of the two players' feature distributions.
    See `engine.offline.music_figures` and `music_overlap` for the exact definitions.
    """
    mode = _mode(mode)
    out: dict[str, float | int | bool | None] = {
        "performer_notes": len(performer),
        "ai_notes": len(ai),
        "hammer": figures.hammer(ai),
        **figures.key_agreement(performer, ai, mode),
        **figures.density(performer, ai),
        **figures.answers(performer, ai),
        **figures.answer_length(performer, ai),
        **figures.motif_reuse(performer, ai),
        "register": figures.register(performer, ai),
        "polyphony": figures.polyphony(ai),
        "chord_notes": figures.chord_notes(ai),
        **figures.on_pulse(performer, ai),
        "velocity_follow": figures.velocity_follow(performer, ai),
        **figures.velocity_stats(performer, ai),
        **overlapping_areas(performer, ai),
    }
    return {key: _json_safe(value) for key, value in out.items()}


def self_figures(performer: Sequence[Note], mode: str = "continuous") -> Figures:
    """The human reference: the performer scored against himself, "the next 8 s against the
    last 8 s". The performance is cut into 8 s blocks by onset (a grid at multiples of 8 s);
    for each pair of consecutive blocks that both hold notes, block i+1 plays the AI and block i
    the performer. The pairs are laid far apart on one time line and scored together by
    `review`, so every ratio pools its counts over all pairs. `self_pairs` counts the pairs."""
    blocks: dict[int, list[Note]] = defaultdict(list)
    for n in performer:
        blocks[math.floor(n.start_s / SELF_BLOCK_S)].append(n)
    lead: list[Note] = []
    follow: list[Note] = []
    pairs = 0
    for i in sorted(blocks):
        if i + 1 not in blocks:
            continue
        shift_s = pairs * _SELF_PAIR_SPACING_S - i * SELF_BLOCK_S
        lead += [_shifted(n, shift_s, PERFORMER) for n in blocks[i]]
        follow += [_shifted(n, shift_s, AI) for n in blocks[i + 1]]
        pairs += 1
    return {**review(lead, follow, mode), "self_pairs": pairs}


def _shifted(n: Note, shift_s: float, player: int) -> Note:
    return Note(n.start_s + shift_s, n.end_s + shift_s, n.pitch, n.velocity, player)


def join_performances(performances: Iterable[Sequence[Note]], gap_s: float = 2 * SELF_BLOCK_S) -> list[Note]:
    """Several performances on one time line, each starting on the 8 s grid at least `gap_s`
    after the previous one's last release, so `self_figures` never pairs blocks across files."""
    joined: list[Note] = []
    offset_s = 0.0
    for notes in performances:
        if not notes:
            continue
        first_s = min(n.start_s for n in notes)
        shift_s = offset_s - math.floor(first_s / SELF_BLOCK_S) * SELF_BLOCK_S
        joined += [_shifted(n, shift_s, n.player) for n in notes]
        last_s = max(n.end_s for n in joined)
        offset_s = math.ceil((last_s + gap_s) / SELF_BLOCK_S) * SELF_BLOCK_S
    return joined


# ---- files ----

def read_tracks(path: str | os.PathLike) -> list[tuple[str, list[Note]]]:
    """(track name, notes) of each track of a duet file, each track its own instrument
    (`engine.training.midi_files.read_tracks`); a bad file is a one-line MidiFileError."""
    return [(name, figures.by_onset(notes)) for name, notes in read_tracks_of(path, one_piano=False)]


def read_duet(path: str | os.PathLike) -> tuple[list[Note], list[Note]]:
    """(performer, ai) notes of a duet file: the tracks named "performer" and "ai", else the
    first two tracks that hold notes (a conductor track 0 is passed over)."""
    tracks = read_tracks(path)
    named = {name.strip().lower(): notes for name, notes in tracks}
    if all(name in named for name in PLAYER_NAMES):
        chosen = [named[name] for name in PLAYER_NAMES]
    else:
        chosen = [notes for _, notes in tracks if notes][:2]
        if len(chosen) < 2:
            raise ValueError(f"{path}: a duet needs two tracks with notes (performer, ai); found {len(chosen)}")
    performer = [Note(n.start_s, n.end_s, n.pitch, n.velocity, PERFORMER) for n in chosen[0]]
    ai = [Note(n.start_s, n.end_s, n.pitch, n.velocity, AI) for n in chosen[1]]
    return performer, ai


def read_performance(path: str | os.PathLike) -> list[Note]:
    """The performer's notes of a file: its "performer" track if it has one, else all tracks."""
    tracks = read_tracks(path)
    mine = [notes for name, notes in tracks if name.strip().lower() == PLAYER_NAMES[PERFORMER]]
    return figures.by_onset(n for notes in (mine or [notes for _, notes in tracks]) for n in notes)


def sidecar_mode(path: str | os.PathLike) -> str | None:
    """The mode recorded in the JSON sidecar next to a duet file (`<base>.json`): its "mode",
    else its meta's "mode", else its meta's "preset" when that is a mode's name or a preset
    that can still be loaded. None without a sidecar or a mode in it."""
    sidecar_path = Path(path).with_suffix(".json")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict):
        return None
    meta = sidecar.get("meta") if isinstance(sidecar.get("meta"), dict) else {}
    for candidate in (sidecar.get("mode"), meta.get("mode"), meta.get("preset")):
        if candidate in MODES:
            return _mode(candidate)
    if isinstance(meta.get("preset"), str):
        try:
            return _mode(load_preset(meta["preset"]).mode)
        except (PresetError, OSError, ValueError):
            log.info("%s: preset %r not found; the mode must be given", sidecar_path, meta["preset"])
    return None


def review_file(path: str | os.PathLike, mode: str | None = None) -> dict[str, str | float | int | None]:
    """`review` of a duet MIDI file, with "file" and "mode" added. `mode` given wins; else the
    sidecar's (`sidecar_mode`); with neither, ValueError."""
    mode = mode if mode is not None else sidecar_mode(path)
    if mode is None:
        raise ValueError(f"{path}: no mode in a sidecar next to it; give one of {', '.join(MODES)}")
    performer, ai = read_duet(path)
    return {"file": str(path), "mode": _mode(mode), **review(performer, ai, mode)}
