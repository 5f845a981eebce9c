"""The guide while sampling: a pitch the AI holds or just released is not struck again, the
density holds back new notes, and the scale and register narrow the pitches the model may pick."""
from __future__ import annotations

import pytest
import torch

from engine.duet.guide import DENSITY_WINDOW_S, Guide, Steering
from engine.events import AI, PERFORMER, Note

C_MAJOR = frozenset({0, 2, 4, 5, 7, 9, 11})


def pitches_allowed(tok, mask: torch.Tensor) -> set[int]:
    lo, hi = tok.pitch_range
    return {p for p in range(lo, hi + 1) if bool(mask[tok.token_id(f"Pitch_{p}")])}


def after_program(tok) -> list[int]:
    return [tok.token_id(f"Program_{AI}")]


def test_a_pitch_held_or_just_released_by_the_ai_is_not_struck_again(tokenizer):
    recent = [Note(0.0, 1.0, 60, 80, AI), Note(0.0, 0.97, 64, 80, AI), Note(0.0, 0.5, 67, 80, AI),
              Note(0.0, 1.0, 72, 80, PERFORMER)]  # the performer's keys are his own
    steering = Steering(Guide(), tokenizer, recent)
    allowed = pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 1.0, []))
    assert 60 not in allowed and 64 not in allowed  # released 0 and 30 ms ago
    assert 67 in allowed and 72 in allowed  # released 500 ms ago; the performer's
    played = [Note(1.0, 1.2, 62, 80, AI)]  # sampled in this chunk, still sounding
    assert 62 not in pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 1.1, played))


def test_density_holds_back_a_new_note_until_the_window_has_room(tokenizer):
    steering = Steering(Guide(onsets_per_s=2.0), tokenizer, [])
    program = tokenizer.token_id(f"Program_{AI}")
    between = [next(i for i, name in enumerate(tokenizer.vocab) if name.startswith("Duration_"))]  # a note ended
    busy = [Note(0.1 * i, 0.1 * i + 0.05, 60 + i, 80, AI) for i in range(4)]  # 4 onsets in 2 s: the cap
    held = steering.mask(between, 0.35, busy)
    assert held is not None and not bool(held[program])
    assert steering.held_back == 1
    later = 0.3 + DENSITY_WINDOW_S  # the first onsets left the window
    assert steering.mask(between, later, busy) is None


def test_scale_and_register_narrow_the_pitches(tokenizer):
    steering = Steering(Guide(scale=C_MAJOR, scale_share=1.0, ceiling=60, ceiling_share=1.0), tokenizer, [],
                        generator=torch.Generator().manual_seed(0))
    allowed = pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 0.0, []))
    assert allowed and all(p % 12 in C_MAJOR and p < 60 for p in allowed)
    free = Steering(Guide(scale=C_MAJOR, scale_share=0.0), tokenizer, [])
    assert 61 in pitches_allowed(tokenizer, free.mask(after_program(tokenizer), 0.0, []))


def test_a_share_holds_about_that_share_of_notes(tokenizer):
    steering = Steering(Guide(scale=C_MAJOR, scale_share=0.7), tokenizer, [],
                        generator=torch.Generator().manual_seed(1))
    held = sum(61 not in pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 0.0, []))
               for _ in range(400))
    assert 0.62 < held / 400 < 0.78


def test_nothing_is_steered_between_notes_without_a_density(tokenizer):
    steering = Steering(Guide(), tokenizer, [])
    shift = next(i for i, name in enumerate(tokenizer.vocab) if name.startswith("TimeShift_"))
    assert steering.mask([shift], 1.0, []) is None


def scale_run(start_s: float, pitches, step_s: float = 0.25) -> list[Note]:
    return [Note(start_s + i * step_s, start_s + (i + 1) * step_s, p, 70, PERFORMER) for i, p in enumerate(pitches)]


def test_the_guide_follows_the_performer_key_and_density():
    from engine.duet.guide import guide_for
    from engine.presets.schema import ConditioningSettings, Mode, Preset

    played = scale_run(0.0, [62, 64, 66, 67, 69, 71, 73, 74] * 2)  # D major, 4 notes a second
    guide = guide_for(Preset(), Mode.CONTINUOUS, played, 4.0)
    assert guide.scale == frozenset({2, 4, 6, 7, 9, 11, 1}) and guide.scale_share == Preset().injection.scale_bias
    assert guide.onsets_per_s == pytest.approx(16 / 3.75) and guide.ceiling is None
    asked = Preset(conditioning=ConditioningSettings(density_nps=3.0))
    accompany = guide_for(asked, Mode.ACCOMPANY, played, 4.0)
    assert accompany.onsets_per_s == 3.0  # the preset's density wins
    assert accompany.ceiling == 69 and accompany.ceiling_share > 0.5  # under his median
    silent = guide_for(Preset(), Mode.CONTINUOUS, [], 4.0)
    assert silent.scale is None and silent.onsets_per_s is None and silent.scale_share == 0.0


def test_accompanying_no_note_is_shorter_than_the_guide_asks(tokenizer):
    steering = Steering(Guide(min_duration_s=0.3), tokenizer, [])
    velocity = next(i for i, name in enumerate(tokenizer.vocab) if name.startswith("Velocity_"))
    mask = steering.mask([velocity], 0.0, [])
    durations = [i for i, name in enumerate(tokenizer.vocab) if name.startswith("Duration_")]
    allowed_s = [tokenizer.value(i) * tokenizer.tick_s for i in durations if bool(mask[i])]
    cut_s = [tokenizer.value(i) * tokenizer.tick_s for i in durations if not bool(mask[i])]
    assert allowed_s and min(allowed_s) >= 0.3 and cut_s and max(cut_s) < 0.3
    assert Steering(Guide(), tokenizer, []).mask([velocity], 0.0, []) is None


def test_imitating_the_ai_takes_up_the_performers_steps_from_its_own_note(tokenizer):
    from engine.duet.guide import guide_for
    from engine.midi.notes import top_voice
    from engine.presets.schema import InjectionSettingsRef, Mode, Preset

    motif = [64, 66, 68, 64, 69]  # steps +2 +2 -4 +5
    played = [Note(i * 0.25, i * 0.25 + 0.2, p, 80, PERFORMER) for i, p in enumerate(motif)]
    chord = [Note(0.5, 0.7, 60, 80, PERFORMER)]  # under the melody: not part of it
    assert [n.pitch for n in top_voice(played + chord)] == motif
    imitating = Preset(injection=InjectionSettingsRef(respond_imitate=1.0))
    guide = guide_for(imitating, Mode.CALL_AND_RESPONSE, played + chord, 1.5)
    assert guide.motif == (2, 2, -4, 5) and guide.motif_share == 1.0 and guide.motif_since_s == 1.0
    assert guide_for(Preset(injection=InjectionSettingsRef(respond_imitate=0.5)), Mode.CALL_AND_RESPONSE,
                     played, 1.5).motif_share == 0.0  # the respond side of the dial: its own ideas
    answer = [Note(2.0, 2.2, 70, 80, AI), Note(2.25, 2.45, 72, 80, AI)]  # its own first note, then +2
    steering = Steering(guide, tokenizer, answer, generator=torch.Generator().manual_seed(0))
    assert pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 2.5, [])) == {74}  # the next +2
    first = Steering(guide, tokenizer, [], generator=torch.Generator().manual_seed(0))
    assert len(pitches_allowed(tokenizer, first.mask(after_program(tokenizer), 2.0, []))) > 1  # its own start


# ---- accompanying: chords, and attacks on his pulse ----

def duration_token(tok) -> list[int]:
    return [next(i for i, name in enumerate(tok.vocab) if name.startswith("Duration_"))]


def shift_ids(tok) -> list[int]:
    return [i for i, name in enumerate(tok.vocab) if name.startswith("TimeShift_")]


def test_an_accompanying_attack_is_a_chord_of_spaced_notes(tokenizer):
    steering = Steering(Guide(voicing=((3, 1.0),)), tokenizer, [])
    struck = [Note(2.0, 2.5, 48, 70, AI)]
    after_note = steering.mask(duration_token(tokenizer), 2.0, struck)
    assert after_note is not None and not any(bool(after_note[i]) for i in shift_ids(tokenizer))  # another note comes
    allowed = pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 2.0, struck))
    assert {46, 47, 49, 50}.isdisjoint(allowed) and {45, 51, 52} <= allowed  # no cluster around its 48
    chord = [*struck, Note(2.0, 2.5, 52, 70, AI), Note(2.0, 2.5, 55, 70, AI)]
    assert steering.mask(duration_token(tokenizer), 2.0, chord) is None  # three notes: the chord is whole
    later = steering.mask(duration_token(tokenizer), 2.5, chord)  # no attack at 2.5: nothing asks for a note
    assert later is None
    # The model's clock runs on its tick grid, a note's onset on the session's: a few ms apart,
    # the note is still in the attack (else the chord never closes and the pitch is struck again).
    nearby = [Note(2.0029, 2.5, 48, 70, AI), Note(2.0029, 2.5, 52, 70, AI), Note(2.0029, 2.5, 55, 70, AI)]
    assert steering.mask(duration_token(tokenizer), 2.0, nearby) is None
    assert 52 not in pitches_allowed(tokenizer, steering.mask(after_program(tokenizer), 2.0, nearby[:2]))
    single = Steering(Guide(), tokenizer, [])  # not accompanying: single notes are free
    assert single.mask(duration_token(tokenizer), 2.0, struck) is None


def test_chord_sizes_follow_the_guides_shares(tokenizer):
    guide = Guide(voicing=((2, 0.5), (4, 0.5)))
    sizes = []
    for seed in range(200):
        steering = Steering(guide, tokenizer, [], generator=torch.Generator().manual_seed(seed))
        chord = [Note(1.0, 1.5, 40, 70, AI)]
        while steering.mask(duration_token(tokenizer), 1.0, chord) is not None:
            chord.append(Note(1.0, 1.5, chord[-1].pitch + 4, 70, AI))
        sizes.append(len(chord))
    assert set(sizes) == {2, 4} and 0.38 < sizes.count(2) / 200 < 0.62


def test_on_his_pulse_every_shift_lands_on_the_grid_and_off_it_no_attack_starts(tokenizer):
    steering = Steering(Guide(pulse_s=0.25, pulse_anchor_s=10.0), tokenizer, [])
    program = tokenizer.token_id(f"Program_{AI}")
    tolerance_s = max(0.25 * 0.125 / 2, tokenizer.tick_s)

    def landings(mask, now_s):
        return [now_s + tokenizer.value(i) * tokenizer.tick_s for i in shift_ids(tokenizer) if bool(mask[i])]

    for now_s in (10.5, 10.6):  # on a grid point, then 0.1 s into a 0.25 s step
        mask = steering.mask(duration_token(tokenizer), now_s, [])
        assert bool(mask[program]) == (now_s == 10.5)
        landed = landings(mask, now_s)
        assert landed and all(abs((t - 10.0 + 0.125) % 0.25 - 0.125) <= tolerance_s + 1e-9 for t in landed)
    assert any(abs(t - 10.75) < tokenizer.tick_s for t in landings(steering.mask(duration_token(tokenizer), 10.6, []), 10.6))
    chord = [Note(10.6, 11.0, 48, 70, AI)]  # an attack already struck off the grid (the grid moved): its chord may go on
    assert bool(steering.mask(duration_token(tokenizer), 10.6, chord)[program])


def test_the_accompanying_guide_follows_a_steady_pulse_and_leaves_rubato_free():
    from engine.duet.guide import guide_for
    from engine.presets.schema import Mode, Preset

    steady = scale_run(0.0, [60, 62, 64, 65, 67, 69, 71, 72] * 2, step_s=0.5)  # 120 bpm, on the beat
    guide = guide_for(Preset(), Mode.ACCOMPANY, steady, 8.0)
    assert guide.pulse_s == pytest.approx(0.25, rel=0.05) and guide.pulse_anchor_s == pytest.approx(7.5)
    assert guide.voicing and guide_for(Preset(), Mode.CONTINUOUS, steady, 8.0).pulse_s is None
    free_time = [Note(t, t + 0.2, 60 + i % 7, 70, PERFORMER)
                 for i, t in enumerate([0.0, 0.37, 0.81, 1.02, 1.55, 1.71, 2.33, 2.46, 3.1, 3.29, 3.77])]
    assert guide_for(Preset(), Mode.ACCOMPANY, free_time, 4.0).pulse_s is None
