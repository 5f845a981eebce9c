"""Listening: chord names from voicings, recency, held keys and the pedal, phrase ends,
pulse, density, register and loudness of the performer."""
from __future__ import annotations

import pytest

from engine.events import AI, SUSTAIN_CC, Note, control, note_off, note_on
from engine.duet.listening import (
    CHORD_QUALITIES,
    Chord,
    Listener,
    listen_to_notes,
    match_chord,
    note_weights,
    pitch_class_weights,
)


def chord(pitches, start_s=0.0, end_s=1.0, velocity=80):
    return [Note(start_s, end_s, p, velocity) for p in pitches]


@pytest.mark.parametrize(
    ("pitches", "name"),
    [
        ((48, 52, 55, 59), "Cmaj7"),
        ((50, 53, 57, 60), "Dm7"),
        ((43, 47, 50, 53), "G7"),
        ((54, 57, 60, 64), "F#m7b5"),  # the same notes as Am6: the bass decides
        ((47, 50, 53, 56), "Bdim7"),  # any of four dim7 roots: the bass decides
        ((48, 52, 55, 57), "C6"),
        ((45, 48, 52, 55), "Am7"),  # C6's notes over A
        ((48, 52, 55), "C"),
        ((57, 60, 64), "Am"),
        ((48, 51, 55, 58), "Cm7"),
        ((48, 51, 55, 57), "Cm6"),
        ((48, 51, 54), "Cdim"),
        ((48, 52, 56), "Caug"),
        ((48, 53, 55), "Csus4"),
        ((52, 55, 59, 60), "Cmaj7"),  # first inversion: a clear template beats the bass bonus
        ((36, 55, 64, 70, 74), "C7"),  # spread, a ninth on top
    ],
)
def test_chord_names_of_voicings(pitches, name):
    listening = listen_to_notes(chord(pitches), now_s=0.5)
    assert listening.chord_name == name
    assert listening.chord.pitch_classes <= {p % 12 for p in pitches}


def test_every_template_names_itself_in_root_position():
    for quality, intervals in CHORD_QUALITIES.items():
        for root in (0, 6, 11):
            weights = [0.0] * 12
            for i in intervals:
                weights[(root + i) % 12] = 1.0
            found = match_chord(weights, bass_pc=root)
            assert (found.root, found.quality) == (root, quality)


@pytest.mark.parametrize("pitches", [(), (60,), (60, 67), (60, 61, 62, 63)])
def test_no_chord_when_unclear(pitches):
    assert listen_to_notes(chord(pitches), now_s=0.5).chord is None


def test_chord_name_spelling():
    assert Chord(0, "maj", 1.0).name == "C"
    assert Chord(9, "min", 1.0).name == "Am"
    assert Chord(6, "m7b5", 1.0).name == "F#m7b5"


def test_recent_chord_replaces_an_old_one():
    notes = chord((48, 52, 55), 0.0, 0.5) + chord((43, 47, 50, 53), 2.0, 3.0)
    assert listen_to_notes(notes, now_s=2.5).chord_name == "G7"
    assert listen_to_notes(notes, now_s=0.4).chord_name == "C"


def test_a_passing_note_weighs_less_than_a_held_chord():
    notes = chord((48, 52, 55), 0.0, 2.0) + [Note(1.0, 1.1, 62, 80)]
    weighted = note_weights(notes, now_s=1.9)
    weights = pitch_class_weights(weighted)
    assert weights[2] < weights[0] / 3
    assert sum(weights) == pytest.approx(1.0)
    listening = listen_to_notes(notes, now_s=1.9)
    assert listening.chord_name == "C"
    assert 62 not in listening.pitches


def test_held_keys_keep_the_chord_and_count_as_held():
    lis = Listener()
    for p in (50, 53, 57, 60):
        lis.note_on(0.0, p, 70)
    snap = lis.listen(10.0)
    assert snap.chord_name == "Dm7"
    assert snap.held == (50, 53, 57, 60)
    assert snap.silence_s == 0.0
    assert snap.lowest == 50 and snap.highest == 60


def test_pedal_sustains_released_keys_until_lifted():
    lis = Listener()
    lis.pedal(0.0, True)
    for p in (48, 52, 55):
        lis.note_on(0.1, p, 70)
        lis.note_off(0.3, p)
    snap = lis.listen(3.0)
    assert snap.chord_name == "C" and snap.held == () and snap.sustain
    lis.pedal(3.0, False)
    assert lis.listen(3.2).chord_name == "C"  # just released: still in the air
    assert lis.listen(6.0).pitches == ()


def test_restruck_key_ends_the_previous_sound():
    lis = Listener()
    lis.note_on(0.0, 60, 70)
    lis.note_on(0.5, 60, 90)
    lis.note_off(0.7, 60)
    assert lis.listen(0.8).held == ()
    assert lis.listen(0.8).since_last_note_s == pytest.approx(0.3)


def test_phrase_end_needs_silence_without_held_keys():
    lis = Listener()
    assert not lis.phrase_ended(5.0, gap_s=1.0)  # nothing played yet
    lis.note_on(0.0, 60, 80)
    assert not lis.phrase_ended(5.0, gap_s=1.0)  # a key held for 5 s is not silence
    lis.note_off(5.0, 60)
    assert not lis.phrase_ended(5.5, gap_s=1.0)
    assert lis.phrase_ended(6.2, gap_s=1.0)
    assert lis.listen(6.2).phrase_ended(1.0)
    assert lis.listen(6.2).silence_s == pytest.approx(1.2)
    lis.note_on(6.3, 62, 80)
    assert not lis.phrase_ended(8.0, gap_s=1.0)


def test_pedal_alone_does_not_hold_a_phrase_open():
    lis = Listener()
    lis.pedal(0.0, True)
    lis.note_on(0.0, 60, 80)
    lis.note_off(0.2, 60)
    assert lis.phrase_ended(1.5, gap_s=1.0)
    assert 60 in lis.listen(1.5).pitches  # but it still sounds for the harmony


@pytest.mark.parametrize("beat_s", [0.5, 0.6, 0.4])
def test_tempo_from_a_steady_pulse(beat_s):
    notes = [Note(i * beat_s, i * beat_s + 0.1, 60, 80) for i in range(16)]
    now = 15 * beat_s + 0.05
    assert listen_to_notes(notes, now).tempo_bpm == pytest.approx(60 / beat_s, abs=3)


def test_no_tempo_from_too_few_notes():
    assert listen_to_notes([Note(0, 0.1, 60, 80), Note(0.5, 0.6, 62, 80)], 1.0).tempo_bpm is None


def test_density_counts_recent_onsets_only():
    old = [Note(i * 0.1, i * 0.1 + 0.05, 60, 80) for i in range(20)]  # 0..1.9 s: ten per second
    recent = [Note(10 + i * 0.5, 10 + i * 0.5 + 0.1, 62, 80) for i in range(8)]  # 10..13.5 s
    assert listen_to_notes(old + recent, now_s=13.9).density_nps == pytest.approx(2.0)
    assert listen_to_notes(old + recent, now_s=30.0).density_nps == 0.0


def test_register_and_loudness_of_recent_notes():
    notes = [Note(0.0, 0.2, 30, 120)]  # long ago: outside the register window
    notes += [Note(5 + i * 0.2, 5.1 + i * 0.2, p, 60) for i, p in enumerate((48, 60, 64, 79))]
    snap = listen_to_notes(notes, now_s=6.0)
    assert (snap.lowest, snap.highest, snap.median) == (48, 79, 62.0)
    assert snap.mean_velocity == pytest.approx(60)
    assert snap.since_last_note_s == pytest.approx(0.4)
    empty = listen_to_notes([], now_s=1.0)
    assert (empty.lowest, empty.highest, empty.median, empty.mean_velocity, empty.since_last_note_s) == (None,) * 5


def test_ai_notes_are_not_listened_to():
    snap = listen_to_notes([Note(0, 1, p, 80, AI) for p in (48, 52, 55)], now_s=0.5)
    assert snap.pitches == () and snap.chord is None


def test_feed_takes_captured_midi_events():
    lis = Listener()
    for p in (43, 47, 50, 53):
        lis.feed(note_on(1_000_000_000, p, 90))
    lis.feed(control(1_100_000_000, SUSTAIN_CC, 127))
    for p in (43, 47, 50, 53):
        lis.feed(note_off(1_200_000_000, p))
    snap = lis.listen(1.5)
    assert snap.chord_name == "G7" and snap.sustain and snap.held == ()
    lis.feed(control(2_000_000_000, SUSTAIN_CC, 0))
    assert not lis.listen(2.0).sustain


def test_memory_stays_bounded_over_a_long_jam():
    lis = Listener()
    for i in range(5000):
        lis.note_on(i * 0.1, 60 + i % 12, 80)
        lis.note_off(i * 0.1 + 0.05, 60 + i % 12)
    assert lis.memory_size < 400  # about 10 s of notes and onsets, not 500 s
    assert lis.listen(500.0).density_nps == pytest.approx(10.0, abs=0.5)
