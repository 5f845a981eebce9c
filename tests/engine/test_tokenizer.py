"""Tokenizer: round trips within the documented error, players, pedal folding, windows, the
incremental decoder, garbage ids, conditions, and the saved config."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.tokens.conditions import Conditions, conditions_from_notes, estimate_key, estimate_tempo_bpm
from engine.events import AI, PERFORMER, Note
from engine.tokens.decoder import IncrementalDecoder, decode, validate_tokens
from engine.tokens.tokenizer import (
    BOS,
    CONDITION,
    DURATION,
    JamTokenizer,
    TokenizerConfigError,
    make_config,
)
from engine.midi.midifile import load_midi_events, midi_duration_s
from engine.midi.notes import fold_sustain, notes_from_events, pair_notes
from engine.training.data import assign_players
from engine.training.midi_files import read_notes
from tests import midi_fixtures as fx

TOK = JamTokenizer()
ONSET_ERROR_S = TOK.tick_s / 2  # docs/tokens.md: 5.2 ms
VELOCITY_ERROR = 2
EPS = 1e-9


def expressive_notes(seed: int, count: int = 300) -> list[Note]:
    """Off-grid times, rolled chords, both players, durations from 5 ms to 10 s."""
    rng = random.Random(seed)
    notes, t = [], rng.uniform(0, 1)
    for _ in range(count):
        t += rng.choice([rng.uniform(0, 0.03), rng.uniform(0.05, 0.6), rng.uniform(0.6, 5)])
        duration = rng.choice([rng.uniform(0.005, 0.5), rng.uniform(0.5, 10)])
        notes.append(Note(t, t + duration, rng.randint(21, 108), rng.randint(1, 127), rng.choice((PERFORMER, AI))))
    return notes


def in_token_order(notes: list[Note]) -> list[Note]:
    key = {}
    for n in notes:
        key.setdefault((round(n.start_s / TOK.tick_s), n.player, n.pitch), n)
    return [key[k] for k in sorted(key)]


# docs/tokens.md: (durations below, step) for the chosen beat_res at 0.5 s per beat.
DURATION_STEPS_S = ((0.5, 0.5 / 48), (1.0, 0.5 / 16), (2.0, 0.5 / 8), (4.0, 0.5 / 4), (8.0, 0.5))


def duration_bound_s(duration_s: float) -> float:
    """Half the step of the duration values around `duration_s`."""
    step = next(step for below, step in DURATION_STEPS_S if duration_s < below or below == 8.0)
    return step / 2 + EPS


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_of_expressive_notes_is_within_the_documented_error(seed):
    notes = expressive_notes(seed)
    decoded = decode(TOK, TOK.encode(notes, start_s=0.0))
    expected = in_token_order(notes)
    assert len(decoded) == len(expected)
    for a, b in zip(expected, decoded):
        assert (b.pitch, b.player) == (a.pitch, a.player)
        assert abs(b.start_s - a.start_s) <= ONSET_ERROR_S + EPS
        assert abs(b.velocity - a.velocity) <= VELOCITY_ERROR
        wanted = min(a.duration_s, TOK.max_duration_s)
        assert abs(b.duration_s - wanted) <= duration_bound_s(wanted)
        assert b.duration_s > 0


def test_onset_error_does_not_accumulate_over_a_long_sequence():
    notes = [Note(0.0123 + i * 0.3137, 0.0123 + i * 0.3137 + 0.1, 60 + i % 12, 64) for i in range(2000)]
    decoded = decode(TOK, TOK.encode(notes))
    assert max(abs(a.start_s - b.start_s) for a, b in zip(notes, decoded)) <= ONSET_ERROR_S + EPS


def test_a_note_is_program_pitch_velocity_duration_after_its_time_shifts():
    notes = [Note(0.25, 0.5, 60, 80, PERFORMER), Note(0.25, 0.75, 64, 70, AI), Note(1.0, 1.5, 67, 90, AI)]
    assert TOK.tokens(TOK.encode(notes)) == [
        "BOS_None",
        "TimeShift_0.24.48", "Program_0", "Pitch_60", "Velocity_79", "Duration_0.24.48",
        "Program_1", "Pitch_64", "Velocity_71", "Duration_1.0.16",
        "TimeShift_1.8.16", "Program_1", "Pitch_67", "Velocity_91", "Duration_1.0.16",
    ]  # fmt: skip


def test_two_players_are_preserved():
    notes = [Note(i * 0.21, i * 0.21 + 0.3, 50 + i, 80, player=i % 2) for i in range(20)]
    decoded = decode(TOK, TOK.encode(notes))
    assert [(n.pitch, n.player) for n in decoded] == [(n.pitch, n.player) for n in notes]


def test_ids_equal_miditok_own_encoding_of_the_same_score():
    rng = random.Random(3)
    score = symusic.Score(TOK.ticks_per_beat)
    tracks = {p: symusic.Track(program=p) for p in (PERFORMER, AI)}
    notes, tick = [], 0
    for _ in range(300):
        tick += rng.choice([0, 0, 1, 2, 5, 30, 48, 100, 500])
        duration = rng.choice(TOK.duration_ticks)
        note = Note(tick * TOK.tick_s, (tick + duration) * TOK.tick_s, rng.randint(21, 108), 63, rng.choice((0, 1)))
        notes.append(note)
        tracks[note.player].notes.append(symusic.Note(tick, duration, note.pitch, 63))
    score.tracks.extend(tracks.values())
    assert TOK.encode(notes, bos=False) == TOK.miditok.encode(score).ids


def test_pedal_is_folded_into_durations_from_a_midi_file(tmp_path):
    events = load_midi_events(fx.write_chords_with_pedal(tmp_path))
    notes = notes_from_events(events)
    ends = {(n.start_s, n.pitch): n.end_s for n in notes}
    # C chord released under the pedal (down 0-0.75): sounds until the pedal comes up.
    assert [ends[(0.0, p)] for p in (60, 64, 67)] == [0.75, 0.75, 0.75]
    # F chord released after the pedal came up, G chord released with it: unchanged.
    assert [ends[(0.5, p)] for p in (65, 69, 72)] == [1.0, 1.0, 1.0]
    assert [ends[(1.0, p)] for p in (67, 71, 74)] == [2.0, 2.0, 2.0]
    assert [n.end_s for n in pair_notes(events, midi_duration_s(events))][:3] == [0.5, 0.5, 0.5]


def test_pedal_extension_is_cut_by_a_restrike_of_the_same_pitch():
    notes = [
        Note(0.0, 0.03, 62, 80, PERFORMER),  # released before the pedal goes down: untouched
        Note(0.1, 0.3, 60, 80, PERFORMER),
        Note(0.1, 0.3, 64, 80, PERFORMER),
        Note(1.0, 1.2, 60, 90, AI),  # same key struck again, by the other player
        Note(2.5, 2.6, 64, 80, PERFORMER),  # after the pedal: untouched
    ]
    folded = fold_sustain(notes, [(0.05, 2.0), (1.9, 2.2)])  # overlapping presses merge
    assert [n.end_s for n in folded] == [0.03, 1.0, 2.2, 2.2, 2.6]
    overlapping = fold_sustain([Note(0.0, 1.0, 60, 80), Note(0.5, 0.8, 60, 80)], [])
    assert [n.end_s for n in overlapping] == [0.5, 0.8]


def test_window_drops_or_clips_notes_before_its_start():
    notes = [Note(9.0, 9.5, 60, 80), Note(9.5, 12.0, 62, 80), Note(10.5, 11.0, 64, 80), Note(20.0, 20.5, 65, 80)]
    window = dict(start_s=10.0, end_s=20.0)
    decoded = decode(TOK, TOK.encode(notes, **window), start_s=10.0)
    assert [(n.pitch, round(n.start_s, 3)) for n in decoded] == [(64, 10.5)]
    held = decode(TOK, TOK.encode(notes, keep_held=True, **window), start_s=10.0)
    assert [(n.pitch, round(n.start_s, 3), round(n.end_s, 3)) for n in held] == [(62, 10.0, 12.0), (64, 10.5, 11.0)]
    relative = decode(TOK, TOK.encode(notes, **window))
    assert round(relative[0].start_s, 3) == 0.5


def test_incremental_decoder_emits_each_note_with_its_last_token():
    notes = expressive_notes(11, count=120)
    ids = TOK.encode(notes, start_s=0.5, conditions=Conditions("folk", 100.0, "D", 3.0))
    decoder = IncrementalDecoder(TOK, start_s=0.5)
    emitted = []
    for i, token_id in enumerate(ids):
        out = decoder.feed(token_id)
        assert len(out) == (1 if TOK.kind(token_id) == DURATION else 0), i
        emitted += out
    assert emitted == decode(TOK, ids, start_s=0.5)
    assert decoder.problem_count == 0 and decoder.at_boundary


def test_decoder_takes_appended_performer_notes_between_model_notes():
    decoder = IncrementalDecoder(TOK, start_s=100.0)
    context = decoder.append_notes([Note(100.2, 100.4, 60, 80), Note(100.5, 101.0, 64, 80)])
    model_ids = TOK.encode_notes([Note(100.7, 101.0, 67, 90, AI)], origin_s=100.0, from_tick=decoder.tick)[0]
    ai = decoder.feed_all(model_ids)
    assert [(n.pitch, n.player, round(n.start_s, 2)) for n in ai] == [(67, AI, 100.7)]
    late = decoder.append_notes([Note(100.6, 101.0, 62, 70), Note(101.1, 101.3, 65, 70)])  # 100.6 is past
    shift = decoder.advance_to(102.0)
    assert round(decoder.now_s, 3) == 102.0 and shift
    whole = decode(TOK, context + model_ids + late + shift, start_s=100.0)
    assert [(n.pitch, n.player, round(n.start_s, 2)) for n in whole] == [
        (60, PERFORMER, 100.2), (64, PERFORMER, 100.5), (67, AI, 100.7), (62, PERFORMER, 100.7), (65, PERFORMER, 101.1),
    ]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-3, max_value=TOK.vocab_size + 3), max_size=200))
def test_garbage_ids_never_raise(ids):
    notes = decode(TOK, ids)
    validate_tokens(TOK, ids)
    assert all(21 <= n.pitch <= 108 and n.end_s > n.start_s and n.player in (0, 1) for n in notes)


def test_ill_formed_tokens_are_skipped_and_reported():
    good = TOK.encode([Note(0.1, 0.3, 60, 80), Note(0.4, 0.6, 62, 80)])
    assert validate_tokens(TOK, good) == []
    assert validate_tokens(TOK, good[:-1]) == [(len(good) - 2, "sequence ends inside a note")]
    bad = [good[0], good[1], good[3], 10_000, *good[1:], TOK.bos_id, TOK.eos_id, good[2], TOK.pad_id]
    decoder = IncrementalDecoder(TOK)
    for token_id in [None, "x", np.int64(good[1]), *bad]:
        decoder.feed(token_id)
    assert decoder.problem_count >= 5
    assert [n.pitch for n in decode(TOK, bad)] == [60, 62]


def test_key_of_a_c_major_scale_and_a_g_minor_triad_passage():
    scale = [Note(i * 0.5, i * 0.5 + 0.45, p, 80) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 60])]
    assert estimate_key(scale) == "C"
    triad = [Note(i * 0.25, i * 0.25 + 0.2, p, 80) for i, p in enumerate([55, 58, 62, 67, 62, 58, 55, 43] * 3)]
    assert estimate_key(triad) == "Gm"


def test_tempo_of_a_steady_pulse_and_of_its_subdivisions_lands_in_the_120_bucket():
    quarters = [i * 0.5 for i in range(16)]
    assert estimate_tempo_bpm(quarters) == pytest.approx(120, abs=2)
    eighths_with_chords = [i * 0.25 + d for i in range(32) for d in (0.0, 0.012)]
    assert estimate_tempo_bpm(eighths_with_chords) == pytest.approx(120, abs=3)
    notes = [Note(t, t + 0.2, 60, 80) for t in quarters]
    ids = TOK.condition_ids(conditions_from_notes(notes, genre="performance"))
    assert TOK.tokens(ids)[:2] == ["Genre_performance", "Tempo_112-132"]
    assert estimate_tempo_bpm([0.0, 1.0]) is None


def test_conditions_come_after_bos_and_are_dropped_with_a_seeded_rng():
    c = Conditions(genre="jazz-comping", tempo_bpm=90.0, key="F#m", density_nps=5.0)
    full = TOK.encode([Note(0.0, 0.5, 60, 80)], conditions=c)
    assert TOK.tokens(full[:5]) == ["BOS_None", "Genre_jazz-comping", "Tempo_80-96", "Key_F#m", "Density_4-6"]
    assert [TOK.kind(i) for i in full[:5]] == [BOS] + [CONDITION] * 4
    assert TOK.condition_ids(c, drop_p=1.0, rng=random.Random(0)) == []
    assert TOK.condition_ids(c, drop_p=0.0) == full[1:5]
    runs = [TOK.condition_ids(c, drop_p=0.5, rng=random.Random(seed)) for seed in range(400)]
    assert runs[:50] == [TOK.condition_ids(c, drop_p=0.5, rng=random.Random(seed)) for seed in range(50)]
    for token_id in full[1:5]:
        assert 150 < sum(token_id in run for run in runs) < 250
    with pytest.raises(ValueError):
        Conditions(genre="polka")


def test_notes_from_a_two_hand_file(tmp_path):
    notes = assign_players(read_notes(fx.write_two_tracks(tmp_path)), random.Random(0))
    assert [(n.start_s, n.pitch) for n in notes][:3] == [(0.0, 48), (0.0, 72), (0.5, 74)]
    left, right = {n.player for n in notes if n.pitch < 60}, {n.player for n in notes if n.pitch >= 60}
    assert len(left) == len(right) == 1 and left != right  # each hand whole, to one player


def test_save_load_round_trip_and_fingerprint(tmp_path):
    TOK.save(tmp_path)
    loaded = JamTokenizer.load(tmp_path)
    assert loaded.vocab == TOK.vocab and loaded.fingerprint == TOK.fingerprint
    notes = expressive_notes(5, count=50)
    assert loaded.encode(notes) == TOK.encode(notes)
    assert JamTokenizer.from_json(TOK.to_json()).vocab_size == TOK.vocab_size
    meta = json.loads(json.dumps(TOK.to_dict()))  # as a checkpoint's sidecar carries it
    assert (meta["vocab_size"], meta["fingerprint"]) == (TOK.vocab_size, TOK.fingerprint)
    assert JamTokenizer.from_dict(meta).fingerprint == TOK.fingerprint

    other = JamTokenizer(make_config(num_velocities=16))
    assert other.fingerprint != TOK.fingerprint and other.vocab_size != TOK.vocab_size
    finer = JamTokenizer(make_config(beat_res={(0, 1): 64, (1, 2): 16, (2, 4): 8, (4, 8): 4}))
    assert finer.fingerprint != TOK.fingerprint

    path = tmp_path / "jamtui-tokenizer.json"
    data = json.loads(path.read_text())
    data["fingerprint"] = "0" * 16
    path.write_text(json.dumps(data))
    with pytest.raises(TokenizerConfigError, match="fingerprint"):
        JamTokenizer.load(tmp_path)
    path.write_text("{not json")
    with pytest.raises(TokenizerConfigError, match="jamtui-tokenizer.json"):
        JamTokenizer.load(tmp_path)
    with pytest.raises(TokenizerConfigError):
        JamTokenizer.load(tmp_path / "missing")
