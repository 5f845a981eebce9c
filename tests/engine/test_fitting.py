"""The AI's notes before they sound: limits, a turn's end, and no re-strike made after sampling."""
from __future__ import annotations

from engine.duet.fitting import within_limits
from engine.events import AI, Note
from engine.presets.schema import Limits


def test_limits_clamp_velocity_and_polyphony():
    chord = [Note(0.0, 1.0, 60 + 3 * i, 120, AI) for i in range(4)]
    kept = within_limits(chord, Limits(max_velocity=96, max_polyphony=3), [])
    assert [n.pitch for n in kept] == [60, 63, 66] and {n.velocity for n in kept} == {96}


def test_a_turn_end_cuts_onsets_and_rings_briefly():
    notes = [Note(0.5, 3.0, 60, 80, AI), Note(2.5, 2.8, 62, 80, AI)]
    kept = within_limits(notes, Limits(), [], turn_end_s=2.0, ring_s=0.5)
    assert [(n.pitch, n.end_s) for n in kept] == [(60, 2.5)]


def test_a_pitch_the_ai_holds_or_just_released_is_not_struck_again():
    recent = [Note(0.0, 1.0, 60, 80, AI), Note(0.0, 0.5, 64, 80, AI)]
    moved_onto = [Note(1.02, 1.5, 60, 80, AI), Note(1.02, 1.5, 64, 80, AI), Note(1.2, 1.5, 67, 80, AI),
                  Note(1.3, 1.6, 67, 80, AI)]  # 67 struck again while its own note still sounds
    kept = within_limits(moved_onto, Limits(), recent)
    assert [(n.start_s, n.pitch) for n in kept] == [(1.02, 64), (1.2, 67)]
