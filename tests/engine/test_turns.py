"""When a performer's phrase has ended: a pause that stands out from his own pulse, between a
floor and the preset's phrase gap."""
from __future__ import annotations

import pytest

from engine.duet.turns import MIN_PHRASE_GAP_S, phrase_gap_s
from engine.events import Note


def line(step_s: float, count: int, *, chord: int = 1) -> list[Note]:
    return [Note(i * step_s + j * 0.01, i * step_s + step_s * 0.9, 60 + j * 4, 80)
            for i in range(count) for j in range(chord)]


def test_a_fast_player_ends_his_phrase_with_a_shorter_pause():
    assert phrase_gap_s(line(0.125, 16), 0.8) == pytest.approx(0.5)  # four of his 125 ms steps
    assert phrase_gap_s(line(0.125, 16, chord=3), 0.8) == pytest.approx(0.5)  # a chord is one step


def test_the_preset_gap_is_the_longest_and_a_floor_the_shortest():
    assert phrase_gap_s(line(0.5, 16), 0.8) == 0.8  # a slow player: the preset's gap
    assert phrase_gap_s(line(0.03, 16), 0.8) == MIN_PHRASE_GAP_S  # a flurry still needs a real pause
    assert phrase_gap_s(line(0.1, 3), 0.8) == 0.8  # too few onsets to tell a pulse


def test_his_recent_pulse_counts_not_the_whole_phrase():
    slow_then_fast = line(0.5, 16) + [Note(8.0 + i * 0.1, 8.09 + i * 0.1, 62, 80) for i in range(16)]
    assert phrase_gap_s(slow_then_fast, 0.8) == pytest.approx(0.4)


def test_a_pause_in_his_onsets_ends_a_phrase_while_a_key_is_still_held():
    from engine.duet.performer import PerformerTrack
    from engine.duet.report import CueTimer
    from engine.duet.echo import EchoMeter
    from engine.duet.turns import HELD_GAP_S, Turns
    from engine.events import note_off, note_on

    performer = PerformerTrack()
    for i, pitch in enumerate([60, 62, 64, 65, 67]):  # a line over a held bass, 0.125 s steps
        performer.take(note_on(0, pitch, 80), i * 0.125, None, keep_phrase=True)
        performer.take(note_off(0, pitch), i * 0.125 + 0.1, None, keep_phrase=True)
    performer.take(note_on(0, 36, 80), 0.5, None, keep_phrase=True)  # still down
    turns = Turns(CueTimer(), EchoMeter(), lambda *args, **kwargs: None)
    last_onset_s = 0.5

    def cue(now_s):
        return turns.next_cue_s(now_s, performer, 0.8, 0.1, lambda t_s: t_s)

    assert cue(last_onset_s + HELD_GAP_S - 0.2) is None  # too early to prepare the answer
    assert cue(last_onset_s + HELD_GAP_S - 0.05) == pytest.approx(last_onset_s + HELD_GAP_S)
