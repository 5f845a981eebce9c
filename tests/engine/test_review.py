"""Musical figures on constructed duets whose answers are known exactly."""
from __future__ import annotations

import enum
import json
import random

import mido
import pytest

from engine.events import AI, PERFORMER, Note
from engine.midi.notes import top_voice
from engine.offline import music_figures as figures
from engine.tokens.keys import Key, compatible, find_key
from engine.offline.music_overlap import overlap_baselines, overlapping_areas, random_notes
from engine.offline.review import join_performances, read_duet, review, review_file, self_figures

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]
A_MINOR = [57, 60, 64, 57, 59, 60, 62, 64, 65, 67, 68, 69, 57]
F_SHARP_MAJOR = [66, 68, 70, 71, 73, 75, 77, 78]


def line(pitches, start_s=0.0, step_s=0.25, player=AI, velocity=80, length_s=None):
    """One note per step; `length_s` defaults to legato (exactly the step)."""
    length_s = step_s if length_s is None else length_s
    return [Note(start_s + i * step_s, start_s + i * step_s + length_s, p, velocity, player)
            for i, p in enumerate(pitches)]


def looped(pitches, seconds, step_s=0.25, player=PERFORMER, start_s=0.0):
    count = int(round(seconds / step_s))
    return line([pitches[i % len(pitches)] for i in range(count)], start_s, step_s, player)


class Mode(enum.StrEnum):
    ACCOMPANY = "accompany"


# ---- hammer ----

def test_a_restruck_drone_hammers_and_a_legato_line_does_not():
    drone = line([48] * 20, step_s=0.5)
    assert figures.hammer(drone) == pytest.approx(19 / 20)
    assert figures.hammer(line(C_MAJOR + C_MAJOR[::-1][1:])) == 0.0


def test_hammer_counts_a_restrike_just_under_50_ms_only():
    close = [Note(0.0, 0.5, 60, 80, AI), Note(0.54, 1.0, 60, 80, AI)]
    apart = [Note(0.0, 0.5, 60, 80, AI), Note(0.56, 1.0, 60, 80, AI)]
    assert figures.hammer(close) == 0.5
    assert figures.hammer(apart) == 0.0
    assert figures.hammer([]) is None


# ---- keys ----

def test_key_finding_and_the_circle_of_fifths():
    assert find_key(C_MAJOR, [1.0] * 8) == Key(0, False)
    assert find_key(A_MINOR, [1.0] * len(A_MINOR)) == Key(9, True)
    assert find_key(F_SHARP_MAJOR, [1.0] * 8) == Key(6, False)
    assert find_key([], []) is None
    assert compatible(Key(0, False), Key(9, True))  # relative minor
    assert compatible(Key(0, False), Key(7, False)) and compatible(Key(0, False), Key(5, False))
    assert not compatible(Key(0, False), Key(6, False))
    assert not compatible(Key(0, False), Key(2, False))


@pytest.mark.parametrize("mode", ["accompany", "continuous", "call-and-response"])
@pytest.mark.parametrize(("performer_pitches", "agree"), [(C_MAJOR, 1.0), (A_MINOR, 1.0), (F_SHARP_MAJOR, 0.0)])
def test_key_compat_of_c_major_against_compatible_and_distant_keys(mode, performer_pitches, agree):
    performer = looped(performer_pitches, 24.0)
    # Two AI phrases in C major (each 4 s, 4 s apart) inside the performer's span.
    ai = line(C_MAJOR * 2, start_s=8.0) + line(C_MAJOR * 2, start_s=16.0)
    result = review(performer, ai, mode)
    assert result["key_compat"] == agree
    assert result["key_units"] == 2


def test_in_scale_of_a_c_major_scale():
    performer = looped(C_MAJOR, 24.0)
    ai = line(C_MAJOR, start_s=8.0, step_s=0.5)
    assert review(performer, ai, "accompany")["in_scale"] == 1.0
    # Against F# major only F and B of the scale belong: 2 of 8 equal notes.
    assert review(looped(F_SHARP_MAJOR, 24.0), ai, "accompany")["in_scale"] == pytest.approx(2 / 8)


def test_a_window_of_fewer_than_four_ai_notes_is_not_judged():
    result = review(looped(C_MAJOR, 24.0), line([60, 64, 67], start_s=8.0), "accompany")
    assert result["key_compat"] is None and result["in_scale"] is None and result["key_units"] == 0


# ---- density, answers ----

def test_density_of_twice_the_performers_notes_is_two():
    performer = line(C_MAJOR, step_s=0.5, player=PERFORMER)  # 8 notes in 4 s
    ai = line(C_MAJOR * 2, step_s=0.25)  # 16 notes in 4 s
    result = review(performer, ai, "accompany")
    assert result["density"] == pytest.approx(2.0)
    assert result["performer_notes_per_s"] == pytest.approx(2.0)


def test_density_counts_only_the_time_a_player_plays():
    performer = line(C_MAJOR, step_s=0.5, player=PERFORMER) + line(C_MAJOR, start_s=20.0, step_s=0.5, player=PERFORMER)
    assert figures.notes_per_s(performer) == pytest.approx(2.0)  # 16 notes in two 4 s phrases


def test_answers_within_three_seconds_count():
    performer = line(C_MAJOR[:4], step_s=0.5, player=PERFORMER) + line(C_MAJOR[:4], start_s=10.0, step_s=0.5, player=PERFORMER)
    # Phrases end at 2.0 and 12.0: an answer 2.9 s after the first, 3.1 s after the second.
    ai = [Note(4.9, 5.2, 60, 80, AI), Note(15.1, 15.4, 60, 80, AI)]
    result = review(performer, ai, "call-and-response")
    assert result["answers"] == 0.5
    assert result["performer_phrases"] == 2
    assert review(performer, [], "accompany")["answers"] == 0.0


def test_a_phrase_the_duet_ends_on_is_not_judged_unless_answered():
    # A performance cut at a time limit: its last "phrase" ends where the duet ends, with no
    # time left to answer it; counting it would make every such duet half unanswered.
    performer = line(C_MAJOR[:4], step_s=0.5, player=PERFORMER) + line(C_MAJOR[:4], start_s=10.0, step_s=0.5, player=PERFORMER)
    ai = [Note(3.0, 3.5, 60, 80, AI)]  # answers the first phrase; the duet ends at 12.0 with the second
    result = review(performer, ai, "call-and-response")
    assert result["answers"] == 1.0
    assert result["performer_phrases"] == 1 and result["unjudged_phrases"] == 1
    # Given a longer duet (the recording ran on 3 s and more after him), the silence counts against the AI.
    assert figures.answers(performer, ai, until_s=15.0) == {"answers": 0.5, "performer_phrases": 2, "unjudged_phrases": 0}
    # An answer that did come in the little time left counts.
    late = [*ai, Note(12.5, 12.8, 62, 80, AI)]
    assert figures.answers(performer, late)["answers"] == 1.0


def test_a_scrap_answer_is_short_unless_the_performer_cut_in():
    call = line(C_MAJOR[:4], step_s=0.5, player=PERFORMER)  # ends at 2.0
    scrap = line([60, 64, 67], start_s=2.5)  # three notes, then nothing until he plays at 10 s
    again = line(C_MAJOR[:4], start_s=10.0, step_s=0.5, player=PERFORMER)
    phrase = line(C_MAJOR[:4], start_s=14.0) + line(C_MAJOR, start_s=16.0)  # 12 notes, one answer despite its gap
    third = line(C_MAJOR[:4], start_s=30.0, step_s=0.5, player=PERFORMER)
    cut = line([72, 71], start_s=32.5)  # cut in on: he plays again at 33.0
    back = [Note(33.0, 33.5, 48, 70, PERFORMER)]
    result = review(call + again + third + back, scrap + phrase + cut, "call-and-response")
    assert result["whole_answers"] == 2 and result["cut_in"] == pytest.approx(1 / 3)
    assert result["short_answers"] == 0.5 and result["answer_notes"] == (3 + 12) / 2
    assert result["answer_notes_all"] == 3
    assert review(call, [], "call-and-response")["short_answers"] is None


# ---- motif reuse ----

CALL = [60, 62, 64, 67, 65, 64, 62, 60, 59, 62]


def test_a_transposed_copy_reuses_every_motif_and_is_no_copy():
    performer = line(CALL, player=PERFORMER)
    ai = line([p + 5 for p in CALL], start_s=4.0)
    result = review(performer, ai, "call-and-response")
    assert result["motif_reuse"] == 1.0
    assert result["copy_rate"] == 0.0
    assert result["motif_phrases"] == 1


def test_an_exact_echo_is_a_copy():
    result = review(line(CALL, player=PERFORMER), line(CALL, start_s=4.0), "call-and-response")
    assert result["copy_rate"] == 1.0 and result["motif_reuse"] == 1.0


def test_an_unrelated_random_phrase_reuses_little():
    rng = random.Random(3)
    ai = line([rng.randint(48, 84) for _ in range(12)], start_s=4.0)
    result = review(line(CALL, player=PERFORMER), ai, "call-and-response")
    assert result["motif_reuse"] < 0.2
    assert result["copy_rate"] == 0.0


def test_the_melody_of_chords_is_their_top_voice():
    chords = [Note(0.0, 1.0, 48, 80, AI), Note(0.01, 1.0, 64, 80, AI), Note(0.0, 1.0, 55, 80, AI),
              Note(1.0, 2.0, 50, 80, AI), Note(1.0, 2.0, 62, 80, AI)]
    assert [n.pitch for n in top_voice(chords)] == [64, 62]


# ---- register, polyphony, velocity ----

def test_register_against_the_performers_recent_median():
    performer = looped([60, 64, 67, 72], 16.0)
    assert review(performer, line([36, 40, 43], start_s=4.0), "accompany")["register"] == 1.0
    assert review(performer, line([84, 88, 91], start_s=4.0), "accompany")["register"] == 0.0
    # An AI note with no performer note in the 8 s before it is not judged.
    assert figures.register(performer, line([36], start_s=40.0)) is None


def test_polyphony_of_triads_and_of_a_line():
    triads = [Note(t, t + 1.0, p + t, 80, AI) for t in (0.0, 1.0, 2.0) for p in (60, 64, 67)]
    assert figures.polyphony(triads) == 3.0
    assert figures.polyphony(line(C_MAJOR)) == 1.0


def test_velocity_follow_tracks_the_performer():
    performer, ai = [], []
    for k, loud in enumerate([40, 55, 70, 85, 100, 85, 70, 55, 40, 55, 70, 85]):
        performer += [Note(2.0 * k + 0.5 * i, 2.0 * k + 0.5 * i + 0.4, 60, loud, PERFORMER) for i in range(4)]
        ai += [Note(2.0 * k + 2.0 + 0.5 * i, 2.0 * k + 2.4 + 0.5 * i, 48, loud, AI) for i in range(4)]
    assert review(performer, ai, "accompany")["velocity_follow"] > 0.8
    assert figures.velocity_follow(performer[:8], ai[:8]) is None  # fewer than 5 steps


def test_velocity_means_and_spreads():
    result = review(line([60, 62], player=PERFORMER, velocity=50), [Note(0, 1, 60, 40, AI), Note(1, 2, 60, 80, AI)], "accompany")
    assert result["ai_velocity_mean"] == 60.0 and result["ai_velocity_std"] == 20.0
    assert result["performer_velocity_mean"] == 50.0 and result["performer_velocity_std"] == 0.0


# ---- overlapping areas ----

def test_identical_distributions_overlap_fully():
    notes = looped([60, 64, 67, 71, 74], 16.0)
    areas = overlapping_areas(notes, [Note(n.start_s, n.end_s, n.pitch, n.velocity, AI) for n in notes])
    assert all(value == pytest.approx(1.0) for value in areas.values())
    assert overlapping_areas(notes, [])["oa_mean"] is None


def test_baselines_put_a_human_above_random_notes():
    rng = random.Random(0)
    performer = [Note(0.25 * i, 0.25 * i + 0.2, 60 + rng.choice((0, 4, 7, 12)), 70 + rng.randint(0, 10), PERFORMER)
                 for i in range(128)]
    ai = [Note(n.start_s, n.end_s, n.pitch, n.velocity, AI) for n in performer]
    baselines = overlap_baselines(performer, ai, seed=1)
    assert baselines["ceiling"]["oa_mean"] > baselines["floor"]["oa_mean"]
    assert random_notes(ai, seed=1) == random_notes(ai, seed=1)  # seeded
    assert len(random_notes(ai, seed=1)) == len(ai)
    assert overlap_baselines(performer, [])["floor"]["oa_mean"] is None


# ---- JSON safety, modes, the self column ----

@pytest.mark.parametrize("mode", ["accompany", "continuous", "call-and-response", Mode.ACCOMPANY])
def test_figures_are_json_safe_with_an_empty_ai_track(mode):
    for performer in (looped(C_MAJOR, 8.0), []):
        result = review(performer, [], mode)
        json.dumps(result, allow_nan=False)
        assert result["ai_notes"] == 0 and result["hammer"] is None and result["density"] is None


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        review([], [], "duet")


def test_the_self_column_pairs_each_block_with_the_one_before():
    performance = looped(C_MAJOR, 40.0)  # five full 8 s blocks: four pairs
    result = self_figures(performance, "accompany")
    assert result["self_pairs"] == 4
    assert result["key_compat"] == 1.0 and result["in_scale"] == 1.0
    assert result["density"] == pytest.approx(1.0)
    json.dumps(result, allow_nan=False)
    assert self_figures([])["self_pairs"] == 0


def test_joined_performances_never_pair_across_files():
    one, two = looped(C_MAJOR, 8.0), looped(F_SHARP_MAJOR, 8.0)  # one block each
    assert self_figures(join_performances([one, two]))["self_pairs"] == 0


# ---- files ----

def _write_duet(path, tracks, *, ticks_per_beat=480):
    """tracks: (name, [(tick, message), ...]) at 120 bpm: 960 ticks per second."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for name, events in tracks:
        track = mido.MidiTrack()
        if name is not None:
            track.append(mido.MetaMessage("track_name", name=name))
        last = 0
        for tick, message in sorted(events, key=lambda e: e[0]):
            track.append(message.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    midi.save(path)
    return path


def on(tick, note, velocity=80):
    return tick, mido.Message("note_on", note=note, velocity=velocity)


def off(tick, note):
    return tick, mido.Message("note_on", note=note, velocity=0)  # running-status style note-off


def test_a_duet_file_pairs_notes_and_folds_the_pedal(tmp_path):
    performer = [on(0, 60), off(480, 60), (720, mido.Message("control_change", control=64, value=127)),
                 on(960, 64), off(1200, 64), (1920, mido.Message("control_change", control=64, value=0))]
    ai = [on(960, 48, 90), off(1920, 48)]
    path = _write_duet(tmp_path / "duet.mid", [("ai", ai), ("performer", performer)])
    played, answered = read_duet(path)
    assert played == [Note(0.0, 0.5, 60, 80, PERFORMER), Note(1.0, 2.0, 64, 80, PERFORMER)]  # held by the pedal
    assert answered == [Note(1.0, 2.0, 48, 90, AI)]


def test_unnamed_tracks_are_performer_then_ai(tmp_path):
    path = _write_duet(tmp_path / "duet.mid", [(None, []), (None, [on(0, 60), off(960, 60)]), (None, [on(960, 48), off(1920, 48)])])
    played, answered = read_duet(path)
    assert [n.pitch for n in played] == [60] and [n.pitch for n in answered] == [48]


def test_review_file_takes_the_mode_from_the_recorders_sidecar(tmp_path):
    path = _write_duet(tmp_path / "jam.mid", [("performer", [on(0, 60), off(960, 60)]), ("ai", [on(1920, 48), off(2880, 48)])])
    with pytest.raises(ValueError, match="no mode"):
        review_file(path)
    assert review_file(path, "continuous")["mode"] == "continuous"
    (tmp_path / "jam.json").write_text(json.dumps({"format": 1, "meta": {"preset": "accompany"}}))
    result = review_file(path)
    assert result["mode"] == "accompany" and result["answers"] == 1.0
    (tmp_path / "jam.json").write_text(json.dumps({"format": 1, "meta": {"preset": "x", "mode": "call-and-response"}}))
    assert review_file(path)["mode"] == "call-and-response"
    json.dumps(result, allow_nan=False)


# ---- chords and pulse ----

def test_chord_notes_counts_notes_struck_together():
    ai = [Note(0.0, 1.0, 48, 70, AI), Note(0.01, 1.0, 52, 70, AI), Note(0.02, 1.0, 55, 70, AI),  # a rolled triad
          Note(1.0, 1.5, 50, 70, AI)]  # and a single note
    assert figures.chord_notes(ai) == pytest.approx(2.0)
    assert figures.chord_notes([]) is None


def test_on_pulse_scores_attacks_on_his_grid_and_leaves_rubato_unjudged():
    performer = looped([60, 64, 67, 72], 20.0, step_s=0.5)  # 120 bpm: a grid of 0.25 s steps
    on = line([48, 50] * 30, start_s=0.25, step_s=0.5)  # on the off-beats: on the grid
    off = line([48, 50] * 30, start_s=0.125, step_s=0.5)  # half way between grid points
    assert figures.on_pulse(performer, on)["on_pulse"] == 1.0
    assert figures.on_pulse(performer, off)["on_pulse"] == 0.0
    rng = random.Random(3)
    scattered = sorted(rng.uniform(2.0, 19.0) for _ in range(400))
    share = figures.on_pulse(performer, [Note(t, t + 0.1, 48, 70, AI) for t in scattered])["on_pulse"]
    assert 0.15 < share < 0.35  # random attacks: about a quarter
    rubato, t = [], 0.0
    for i in range(40):  # free time: intervals with no common step
        t += rng.uniform(0.31, 0.93)
        rubato.append(Note(t, t + 0.2, 60 + i % 5, 70, PERFORMER))
    assert figures.on_pulse(rubato, on)["pulse_attacks"] < 0.2 * len(on)
