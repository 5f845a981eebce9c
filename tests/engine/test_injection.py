"""Injection: settings validation, the respond/imitate dial, harmonic, velocity and register
blending, echo measurement and its avoidance, and range properties of every blend."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import AI, PERFORMER, Note
from engine.duet.echo import EchoMeter
from engine.duet.injection import (
    InjectionSettings,
    blend,
    blend_harmony,
    blend_velocity,
    drop_echo,
    echo_penalty_pitches,
    interleave,
    is_echo,
    keep_register,
    phrase_similarity,
    salience,
)
from engine.duet.listening import CHORD_QUALITIES, Chord, Listening, listen_to_notes

C_TRIAD = listen_to_notes([Note(0.0, 2.0, p, 64) for p in (60, 64, 67)], now_s=1.0)
MELODY = [(60, 0.0), (62, 0.25), (64, 0.5), (67, 1.0), (65, 1.25), (64, 1.5), (60, 2.0)]


def ai(pitch, start_s=1.0, velocity=90):
    return Note(start_s, start_s + 0.4, pitch, velocity, AI)


def phrase(pairs, transpose=0, offset_s=0.0, stretch=1.0, player=PERFORMER):
    return [Note(offset_s + t * stretch, offset_s + t * stretch + 0.2, p + transpose, 80, player) for p, t in pairs]


def comping(count=60, seed=1):
    """Four-note chords with a melody note between each: many inner voices to thin."""
    rng, notes = random.Random(seed), []
    for i in range(count):
        t = i * 0.5
        notes += [Note(t, t + 0.4, p, 60) for p in (48, 55, 59, 64)]
        notes.append(Note(t + 0.25, t + 0.4, rng.randint(67, 84), 70))
    return notes


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("respond_imitate", 1.5),
        ("respond_imitate", float("nan")),
        ("respond_delay_s", -0.1),
        ("respond_keep", 0.0),
        ("harmony", "blur"),
        ("velocity_under_db", -3),
        ("anti_echo", "yes"),
        ("echo_threshold", 0),
        ("echo_penalty_notes", 2.5),
        ("seed", "7"),
    ],
)
def test_settings_name_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"InjectionSettings.{field}"):
        InjectionSettings(**{field: value})


def test_settings_register_band():
    assert InjectionSettings(register_low=36, register_high=60).register_high == 60
    with pytest.raises(ValueError, match="register_low"):
        InjectionSettings(register_low=36)
    with pytest.raises(ValueError, match="register_high"):
        InjectionSettings(register_low=36, register_high=40)


# --- interleave ----------------------------------------------------------------------------


def test_imitate_keeps_everything_at_once():
    notes = comping()
    out = interleave(notes, now_s=notes[-1].start_s, settings=InjectionSettings(respond_imitate=1.0))
    assert out.notes == tuple(sorted(notes, key=lambda n: (n.start_s, n.pitch)))
    assert out.pending == () and out.input_delay_s == 0.0 and out.weight == 1.0
    assert out.avoid_pitches == () and out.echo_penalty == 0.0


def test_respond_thins_to_salient_notes_and_delays():
    notes = comping()
    now = notes[-1].start_s
    out = interleave(notes, now_s=now, settings=InjectionSettings(respond_imitate=0.0, respond_delay_s=0.5))
    assert out.input_delay_s == 0.5
    assert all(n.start_s + 0.5 > now for n in out.pending) and out.pending
    assert all(n.start_s + 0.5 <= now for n in out.notes)
    due = [n for n in notes if n.start_s + 0.5 <= now]
    assert 0.3 * len(due) < len(out.notes) < 0.8 * len(due)
    kept = {(n.start_s, n.pitch) for n in out.notes}

    def rate(pitch):
        group = [n for n in due if n.pitch == pitch]
        return sum((n.start_s, n.pitch) in kept for n in group) / len(group)

    assert rate(64) > rate(55) and rate(48) > rate(55)  # top and bass over inner voices
    assert out.avoid_pitches == echo_penalty_pitches(notes) and out.echo_penalty == 1.0


def test_strong_velocities_always_survive():
    notes = comping()
    accent = Note(3.0, 3.2, 59, 120)
    assert salience([*notes, accent])[-1] == 1.0
    for seed in range(5):
        out = interleave([*notes, accent], 100.0, InjectionSettings(respond_imitate=0.0, seed=seed))
        assert accent in out.notes


def test_dial_moves_delay_and_weight_monotonically():
    notes = comping()
    outs = [interleave(notes, 100.0, InjectionSettings(respond_imitate=d)) for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
    delays = [o.input_delay_s for o in outs]
    kept = [len(o.notes) for o in outs]
    assert delays == sorted(delays, reverse=True) and kept == sorted(kept)
    assert kept[-1] == len(notes)


def test_thinning_is_deterministic_given_a_seed_and_independent_of_batching():
    notes = comping()
    s = InjectionSettings(respond_imitate=0.0, seed=3)
    first = interleave(notes, 100.0, s)
    assert interleave(notes, 100.0, s) == first
    assert interleave(notes, 100.0, InjectionSettings(respond_imitate=0.0, seed=4)).notes != first.notes
    half = len(notes) // 2 // 5 * 5  # split between whole attacks so the chords stay whole
    split = interleave(notes[:half], 100.0, s).notes + interleave(notes[half:], 100.0, s).notes
    assert split == first.notes


def test_no_echo_hints_when_off():
    out = interleave(comping(), 100.0, InjectionSettings(respond_imitate=0.0, anti_echo="off"))
    assert out.avoid_pitches == () and out.echo_penalty == 0.0


# --- harmony -------------------------------------------------------------------------------


def test_c_sharp_against_a_c_triad_is_dropped():
    assert blend_harmony([ai(61)], C_TRIAD, "drop") == []


def test_c_sharp_against_a_c_triad_moves_to_a_chord_tone():
    [moved] = blend_harmony([ai(61, velocity=77)], C_TRIAD, "move")
    assert moved.pitch == 60 and moved.velocity == 77 and moved.player == AI


@pytest.mark.parametrize(
    ("pitch", "expected"),
    [
        (71, 72),  # B a major 7th above the held C: up to C
        (73, 72),  # Db a minor 9th above C
        (66, 67),  # F# a semitone under G: onto the G
        (62, 62),  # D: a second from C and E, no clash
        (85, 85),  # C# two octaves up: another register, no clash
        (67, 67),  # a chord tone
    ],
)
def test_clashes_and_non_clashes(pitch, expected):
    assert [n.pitch for n in blend_harmony([ai(pitch)], C_TRIAD, "move")] == [expected]


def test_a_chord_tone_of_the_performer_is_no_clash():
    cmaj7 = listen_to_notes([Note(0.0, 2.0, p, 64) for p in (48, 52, 55, 59, 60)], now_s=1.0)
    assert cmaj7.chord_name == "Cmaj7"
    assert [n.pitch for n in blend_harmony([ai(71), ai(72)], cmaj7, "drop")] == [71, 72]


def test_nothing_clashes_in_silence_or_when_off():
    notes = [ai(61), ai(66)]
    assert blend_harmony(notes, Listening(t_s=0.0), "drop") == notes
    assert blend_harmony(notes, C_TRIAD, "off") == notes
    with pytest.raises(ValueError, match="mode"):
        blend_harmony(notes, C_TRIAD, "smear")


# --- velocity and register -----------------------------------------------------------------


def test_ai_sits_under_the_performer():
    performer = listen_to_notes([Note(i * 0.2, i * 0.2 + 0.1, 60, 60) for i in range(10)], now_s=2.0)
    out = blend_velocity([ai(70, velocity=v) for v in (90, 100, 110)], performer, under_db=3.0)
    mean = sum(n.velocity for n in out) / len(out)
    assert mean <= 60 * 10 ** (-3 / 40) + 0.5
    assert [n.velocity for n in out] == sorted(n.velocity for n in out)  # shape kept
    quiet = [ai(70, velocity=30), ai(72, velocity=40)]
    louder = blend_velocity(quiet, performer, under_db=3.0)  # a soft AI follows him up
    assert sum(n.velocity for n in louder) / 2 == pytest.approx(60 * 10 ** (-3 / 40), abs=1.0)
    assert louder[0].velocity < louder[1].velocity
    whisper = [ai(70, velocity=5)]
    assert blend_velocity(whisper, performer)[0].velocity == 20  # by at most FOLLOW_RANGE


def test_velocity_never_below_one():
    whisper = Listening(t_s=0.0, mean_velocity=1.0)
    assert [n.velocity for n in blend_velocity([ai(60, velocity=127)] * 3, whisper, under_db=40)] == [1, 1, 1]


def test_keep_register_moves_by_octaves():
    out = keep_register([ai(30), ai(100), ai(60), ai(72)], 48, 72)
    assert [n.pitch for n in out] == [54, 64, 60, 72]
    with pytest.raises(ValueError):
        keep_register([ai(60)], 60, 65)


def test_blend_applies_every_setting():
    s = InjectionSettings(harmony="drop", register_low=55, register_high=79, velocity_under_db=6.0)
    out = blend([ai(37, velocity=120), ai(43, velocity=120)], C_TRIAD, s)  # up to C#4 (a clash), G3
    assert [n.pitch for n in out] == [55]
    assert out[0].velocity < 64


def test_blend_varies_an_echo_when_asked():
    perf = phrase(MELODY)
    copy = phrase(MELODY, transpose=12, offset_s=3.0, player=AI)
    quiet = InjectionSettings(harmony="off", velocity_under_db=None)
    assert phrase_similarity(blend(copy, Listening(t_s=3.0), quiet, perf), perf) < 0.7
    penalty_only = InjectionSettings(harmony="off", velocity_under_db=None, anti_echo="penalty")
    assert blend(copy, Listening(t_s=3.0), penalty_only, perf) == copy


# --- echo ----------------------------------------------------------------------------------


def test_similarity_identical_transposed_and_unrelated():
    perf = phrase(MELODY)
    assert phrase_similarity(perf, perf) == 1.0
    assert phrase_similarity(phrase(MELODY, transpose=5, offset_s=3.0, player=AI), perf) == 1.0
    assert phrase_similarity(phrase(MELODY, stretch=1.5), perf) == 1.0  # same phrase, slower
    unrelated = phrase([(72, 0.0), (71, 0.6), (55, 0.7), (79, 1.9), (80, 2.0), (62, 2.1), (62, 3.5)])
    assert phrase_similarity(unrelated, perf) < 0.4
    assert phrase_similarity(perf[:1], perf[:1]) == 0.0  # no contour to compare


def test_is_echo_tolerates_a_changed_note():
    perf = phrase(MELODY)
    almost = phrase([(p + (1 if i == 3 else 0), t) for i, (p, t) in enumerate(MELODY)], transpose=-12)
    assert is_echo(almost, perf)
    assert not is_echo(almost, perf, threshold=0.95)
    assert not is_echo(perf[:2], perf[:2])  # two notes are too few to call an echo


@pytest.mark.parametrize(
    "pairs",
    [MELODY, [(60, i * 0.25) for i in range(8)], [(60 + (i % 2) * 7, i * 0.3) for i in range(7)]],
    ids=["melody", "repeated-note", "alternating"],
)
def test_drop_echo_brings_similarity_under_the_threshold(pairs):
    perf = phrase(pairs)
    copy = phrase(pairs, transpose=3, offset_s=4.0, player=AI)
    varied = drop_echo(copy, perf)
    assert phrase_similarity(varied, perf) < 0.7
    assert len(varied) == len(copy) and all(0 <= n.pitch <= 127 for n in varied)
    assert varied == drop_echo(copy, perf)  # deterministic
    other = phrase([(72, 0.0), (71, 0.6), (55, 0.7), (79, 1.9)], player=AI)
    assert drop_echo(other, perf) == other  # not an echo: left alone


def test_echo_meter_counts_echoes():
    meter = EchoMeter()
    perf = phrase(MELODY)
    assert not meter.observe_ai(phrase(MELODY, player=AI))  # nothing to echo yet
    meter.observe_performer(perf)
    unrelated = phrase([(72, 0.0), (71, 0.6), (55, 0.7), (79, 1.9), (80, 2.0)], player=AI)
    answers = (phrase(MELODY, transpose=2), unrelated, drop_echo(phrase(MELODY, 7), perf))
    results = [meter.observe_ai(p) for p in answers]
    assert results == [True, False, False]
    assert (meter.ai_phrases, meter.echoes, meter.echo_rate) == (4, 1, 0.25)
    assert EchoMeter().echo_rate == 0.0


def test_echo_penalty_pitches_are_the_opening_in_order():
    perf = list(reversed(phrase(MELODY)))
    assert echo_penalty_pitches(perf, n=4) == (60, 62, 64, 67)
    assert echo_penalty_pitches([], n=4) == ()


# --- properties ----------------------------------------------------------------------------

ai_notes = st.lists(
    st.builds(
        lambda s, d, p, v: Note(s, s + d, p, v, AI),
        st.floats(0, 10),
        st.floats(0.01, 2),
        st.integers(0, 127),
        st.integers(1, 127),
    ),
    max_size=12,
)
listenings = st.builds(
    lambda ps, chord, mean_v: Listening(t_s=0.0, pitches=tuple(sorted(set(ps))), chord=chord, mean_velocity=mean_v),
    st.lists(st.integers(0, 127), max_size=6),
    st.none() | st.builds(Chord, st.integers(0, 11), st.sampled_from(list(CHORD_QUALITIES)), st.just(1.0)),
    st.none() | st.floats(1, 127),
)


@settings(max_examples=60, deadline=None)
@given(ai_notes, listenings, st.sampled_from(["drop", "move"]), st.floats(0, 40), st.integers(0, 116))
def test_blends_stay_in_range_and_never_add_notes(notes, listening, mode, under_db, low):
    band = (low, min(low + 11 + low % 7, 127))
    s = InjectionSettings(harmony=mode, velocity_under_db=under_db, register_low=band[0], register_high=band[1])
    outs = [
        blend_harmony(notes, listening, mode),
        blend_velocity(notes, listening, under_db),
        keep_register(notes, *band),
        blend(notes, listening, s, performer_phrase=notes[:5]),
    ]
    for out in outs:
        assert len(out) <= len(notes)
        assert all(0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 for n in out)
    assert all(band[0] <= n.pitch <= band[1] for n in outs[2] + outs[3])
