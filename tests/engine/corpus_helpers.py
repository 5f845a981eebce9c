"""Helpers of the corpus tests: MIDI files made in code and `add_files` with its reports collected."""
from __future__ import annotations

import json
from pathlib import Path

import mido

from engine.style.corpus import AddResult, add_files
from engine.user_dirs import corpora_dir
from tests.midi_fixtures import write_scale


def write_notes(path: Path, notes: list[tuple[float, float, int, int]], *, name: str = "") -> Path:
    """A type-0 file at 120 bpm (960 ticks per second): `(start_s, end_s, pitch, channel)`."""
    events = []
    for start_s, end_s, pitch, channel in notes:
        events.append((round(start_s * 960), 1, mido.Message("note_on", note=pitch, velocity=80, channel=channel)))
        events.append((round(end_s * 960), 0, mido.Message("note_off", note=pitch, channel=channel)))
    track, last = mido.MidiTrack(), 0
    if name:
        track.append(mido.MetaMessage("track_name", name=name))
    for tick, _, msg in sorted(events, key=lambda e: e[:2]):
        track.append(msg.copy(time=tick - last))
        last = tick
    mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track]).save(path)
    return path


def scales(directory: Path, count: int, first: int = 0) -> list[Path]:
    """`count` different files: scales of 2..9 notes at different speeds."""
    directory.mkdir(exist_ok=True)
    return [write_scale(directory, name=f"s{i}.mid", notes=2 + i % 8, step_s=0.125 * (1 + i // 8))
            for i in range(first, first + count)]


def add(name: str, *paths: Path) -> tuple[AddResult, dict[str, str], dict[str, list[str]]]:
    """add_files, with its skips as {file name: reason} and warnings as {file name: [messages]}."""
    skips: dict[str, str] = {}
    warnings: dict[str, list[str]] = {}
    result = add_files(name, paths, on_skip=lambda p, why: skips.__setitem__(p.name, why),
                       on_warning=lambda p, what: warnings.setdefault(p.name, []).append(what))
    return result, skips, warnings


def manifest_of(name: str) -> dict:
    return json.loads((corpora_dir() / name / "manifest.json").read_text())
