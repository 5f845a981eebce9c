"""What the audio tests share: a short piano piece written by the test (notes and a sustain pedal),
and the rule that the audio extra's tests skip without it, except in CI where that is a failure."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import mido
import pytest

from engine.audio.render import SOUNDFONT_PLACES

# (start_s, end_s, pitch, velocity): a rising C major scale, then a chord held by the pedal
SCALE = [(0.5 + 0.4 * i, 0.5 + 0.4 * i + 0.3, pitch, 50 + 8 * i)
         for i, pitch in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]
CHORD = [(4.0, 4.3, pitch, 80) for pitch in (48, 55, 64)]
PEDAL = (3.9, 5.6)  # CC64 down, up: the chord sounds until the pedal comes up
PIECE_END_S = 6.0


def in_ci() -> bool:
    """CI (.ci/run) must run the audio tests, not skip them: it sets JAMTUI_REQUIRE_JACK=1 (or
    JAMTUI_REQUIRE_AUDIO=1)."""
    return "1" in (os.environ.get("JAMTUI_REQUIRE_AUDIO"), os.environ.get("JAMTUI_REQUIRE_JACK"))


def need(*modules: str, soundfont: bool = False) -> None:
    """Skip (fail in CI) unless the audio extra's `modules` and, with `soundfont`, a soundfont are there."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if soundfont and not any(Path(p).is_file() for p in SOUNDFONT_PLACES):
        missing.append("a soundfont (fluid-soundfont-gm)")
    if missing:
        reason = f"the audio extra is not installed ({', '.join(missing)} missing): make setup-audio"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


def write_piece(path: Path) -> Path:
    """SCALE, CHORD and PEDAL as a one-track MIDI file at 120 bpm (480 ticks a beat: 960 a second)."""
    timed = []
    for start, end, pitch, velocity in SCALE + CHORD:
        timed.append((start, 1, mido.Message("note_on", note=pitch, velocity=velocity)))
        timed.append((end, 0, mido.Message("note_off", note=pitch, velocity=0)))
    timed.append((PEDAL[0], 1, mido.Message("control_change", control=64, value=127)))
    timed.append((PEDAL[1], 0, mido.Message("control_change", control=64, value=0)))
    track = mido.MidiTrack()
    last = 0
    for t_s, _order, msg in sorted(timed, key=lambda item: item[:2]):
        tick = round(t_s * 960)
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=round(PIECE_END_S * 960) - last))
    midi = mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track])
    midi.save(path)
    return path
