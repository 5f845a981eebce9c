"""The piano roll draws a known note stream (who played, how loud, what is written ahead, the
range following the music), and the AI keys reach the jam: AI on/off, hand over now, tap tempo,
each remappable and in the command palette."""
from __future__ import annotations

import time

from textual.geometry import Size

from engine.clock import FakeClock
from engine.duet.heard import RecentNotes
from engine.events import AI, PERFORMER, Note
from engine.presets.schema import Preset
from jamtui.bridge import POLL_INTERVAL_S
from jamtui.commands import JamCommands
from jamtui.widgets.piano_roll import (
    AHEAD_S,
    PAST_S,
    Cell,
    PianoRoll,
    PitchView,
    draw,
    pitch_view,
)
from tests.ui.rig import (
    PHRASE,
    Rig,
    assert_balanced,
    async_test,
    log_text,
    make_app,
    start,
    status_text,
    wait_for,
)
from tests.ui.test_commands import run_command

COLUMNS = 80  # 0.1 s a column over the 8 s shown: 6 s past, now at column 60, 2 s ahead


def cells_of(grid, view: PitchView, pitch: int) -> list[Cell]:
    return grid[view.half_row(pitch)]


def test_the_roll_draws_each_player_its_shade_and_what_is_written_ahead():
    now_s = 10.0
    recent = RecentNotes(now_s, performer=(Note(5.0, 5.5, 60, 100, PERFORMER), Note(9.0, 10.0, 62, 30, PERFORMER)),
                         ai_sounded=(Note(7.0, 7.3, 64, 40, AI), Note(8.0, 9.0, 60, 90, AI)),
                         ai_ahead=(Note(10.5, 11.0, 65, 70, AI),))
    view = PitchView(low=56, step=1, rows=6)  # pitches 56..67, two a row
    grid, now_column = draw(recent, view, COLUMNS)
    assert (len(grid), len(grid[0]), now_column) == (12, COLUMNS, 60)
    # Columns from the window's start (4 s): 5.0 s is column 10, a loud performer note for 0.5 s.
    c60 = cells_of(grid, view, 60)
    assert c60[10:15] == [Cell.PERFORMER_LOUD] * 5 and c60[9] is Cell.EMPTY and c60[15] is Cell.EMPTY
    assert c60[40:50] == [Cell.AI_LOUD] * 10  # the AI on the same key, later
    assert cells_of(grid, view, 62)[50:60] == [Cell.PERFORMER_SOFT] * 10  # a key down until now
    assert cells_of(grid, view, 64)[30:33] == [Cell.AI_SOFT] * 3
    ahead = cells_of(grid, view, 65)
    assert ahead[65:70] == [Cell.AHEAD] * 5 and set(ahead[:65]) == {Cell.EMPTY}  # right of now only
    assert all(cell is Cell.EMPTY for pitch in (56, 57, 66, 67) for cell in cells_of(grid, view, pitch))


def test_both_players_on_one_key_at_once_are_told_apart():
    recent = RecentNotes(1.0, performer=(Note(0.0, 0.5, 60, 90, PERFORMER),), ai_sounded=(Note(0.2, 0.4, 60, 90, AI),))
    view = PitchView(low=56, step=1, rows=4)
    grid, _ = draw(recent, view, COLUMNS, past_s=1.0, ahead_s=1.0)
    row = cells_of(grid, view, 60)
    assert row[8:16] == [Cell.BOTH] * 8 and row[0] is Cell.PERFORMER_LOUD


def test_the_range_follows_the_music_and_holds_still_while_it_fits():
    view = pitch_view(6)  # twelve pitches, one a half row
    assert view.low <= 60 < view.high and view.step == 1
    low_notes = view.follow(30, 36, 6)  # the left hand, far below: the view moves down to it
    assert low_notes.low <= 30 and 36 < low_notes.high and low_notes.step == 1
    assert low_notes.follow(31, 35, 6) is low_notes  # a little movement inside: no jump
    wide = low_notes.follow(30, 80, 6)  # both hands: coarser, with every note in view
    assert wide.step == 5 and wide.low <= 30 and 80 < wide.high
    assert wide.follow(40, 44, 6).step == 1  # back to a narrow line: fine again
    for rows in range(1, 12):  # whatever the height and the music, every note stays in view
        for lowest in range(0, 128, 5):
            for width in (0, 5, 12, 30, 70, 127):
                highest = min(127, lowest + width)
                view = pitch_view(rows).follow(lowest, highest, rows)
                assert view.low <= lowest and highest < view.high, (rows, lowest, highest, view)


def test_the_widget_draws_a_dense_stream_from_its_bounded_snapshot():
    # Twenty notes a second for 8 s of both players: a frame is drawn from the snapshot, once.
    performer = tuple(Note(t / 20, min(t / 20 + 0.2, 8.0), 48 + t % 24, 40 + t % 80, PERFORMER) for t in range(160))
    ai = tuple(Note(t / 20, min(t / 20 + 0.3, 8.0), 60 + t % 12, 90, AI) for t in range(160))
    roll = PianoRoll()
    roll.show(RecentNotes(8.0, performer=performer, ai_sounded=ai))
    grid, now_column = roll.picture(Size(84, 10))
    assert 48 >= roll.view.low and 71 < roll.view.high
    drawn = {cell for row in grid for cell in row}
    assert {Cell.PERFORMER_SOFT, Cell.PERFORMER_LOUD, Cell.AI_LOUD} <= drawn
    assert all(row[now_column + 1:] == [Cell.EMPTY] * (len(row) - now_column - 1) for row in grid)
    assert (PAST_S, AHEAD_S) == (6.0, 2.0)


def feed(app, rig, pitches, start_s: float, step_s: float = 0.2) -> float:
    """The performer plays `pitches` on the jam's fake clock; returns when the last key went up."""
    jam = app.bridge.jam
    t_s = start_s
    for pitch in pitches:
        jam.advance(t_s)
        rig.play((0x90, pitch, 100))
        jam.advance(t_s + step_s * 0.9)
        rig.play((0x80, pitch, 0))
        t_s += step_s
    return t_s


def ons_after(rig, t_ns: int) -> list:
    return [e for e in rig.note_ons() if e.t_ns >= t_ns]


@async_test
async def test_a_mutes_the_ai_and_brings_it_back_while_the_jam_plays(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, clock_factory=FakeClock, preset=Preset(mode="continuous"))
    async with app.run_test() as pilot:
        await start(app, pilot)
        jam = app.bridge.jam
        jam.advance(2.0)
        assert rig.note_ons()
        await pilot.press("a")
        assert jam.ai_muted and "AI muted" in status_text(app)
        muted_ns = rig.clock.now_ns()
        jam.advance(5.0)
        assert ons_after(rig, muted_ns) == [] and app.screen.state == "running"
        await pilot.press("a")
        assert not jam.ai_muted and "AI muted" not in status_text(app)
        back_ns = rig.clock.now_ns()
        jam.advance(8.0)
        assert ons_after(rig, back_ns)
        await pilot.press("q")
    assert_balanced(rig.sink.events)


@async_test
async def test_g_hands_the_turn_over_and_the_ai_answers_at_once(tmp_path, jam_model):
    rig = Rig()
    # A 5 s phrase gap: left alone, the AI would wait that long after three notes.
    app = make_app(rig, tmp_path, jam_model, clock_factory=FakeClock, preset=Preset(phrase_gap_s=5.0))
    async with app.run_test() as pilot:
        await start(app, pilot)
        end_s = feed(app, rig, PHRASE[:3], 0.5)
        app.bridge.jam.advance(end_s + 1.0)
        assert rig.note_ons() == []
        await pilot.press("g")
        handed_ns = rig.clock.now_ns()
        app.bridge.jam.advance(end_s + 1.5)
        assert rig.note_ons() and rig.note_ons()[0].t_ns < handed_ns + 300_000_000
        await wait_for(pilot, lambda: "handed over: the AI answers now" in log_text(app))
        await pilot.press("2")  # accompany: no turns to hand over
        app.bridge.jam.advance(end_s + 1.6)
        await pilot.press("g")
        await wait_for(pilot, lambda: "hand-over is for call-and-response" in log_text(app))


@async_test
async def test_taps_tell_the_model_a_tempo_and_shift_t_lets_it_follow_again(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, clock_factory=FakeClock, preset=Preset(hotkeys={"tap_tempo": "x"}))
    async with app.run_test() as pilot:
        await start(app, pilot)
        taps = iter([10.0, 10.5, 11.0, 11.5])
        app.screen.tap_clock = lambda: next(taps)
        await pilot.press("x")
        assert "tap again" in log_text(app)
        await pilot.press("x", "x", "x")
        app.bridge.jam.advance(0.5)  # no phrase is playing: the preset is taken at once
        assert app.bridge.jam.preset.conditioning.tempo_bpm == 120.0
        await wait_for(pilot, lambda: "told 120" in status_text(app))
        await pilot.press("T")
        app.bridge.jam.advance(1.0)
        assert app.bridge.jam.preset.conditioning.tempo_bpm is None
        await wait_for(pilot, lambda: "told" not in status_text(app))


@async_test
async def test_the_roll_and_the_status_follow_the_jam(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, clock_factory=FakeClock)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot)
        end_s = feed(app, rig, PHRASE, 0.5, step_s=0.1)
        app.bridge.jam.advance(end_s + 0.8)  # the answer has begun, with notes written ahead
        roll = app.screen.query_one(PianoRoll)
        await wait_for(pilot, lambda: roll.recent is not None and len(roll.recent.performer) == len(PHRASE))
        await wait_for(pilot, lambda: roll.recent.ai_sounded and roll.recent.ai_ahead)
        grid, _ = roll.picture(roll.size)
        drawn = {cell for row in grid for cell in row}
        assert {Cell.PERFORMER_LOUD, Cell.AHEAD} <= drawn and drawn & {Cell.AI_SOFT, Cell.AI_LOUD}
        assert roll.size.height >= 4 and roll.size.width >= 40  # at 80x24
        frames, began = roll.frames, time.monotonic()
        feed(app, rig, PHRASE * 4, end_s + 1.0, step_s=0.05)  # 32 more notes, at once on the app's clock
        await pilot.pause(0.5)
        polls = (time.monotonic() - began) / POLL_INTERVAL_S
        assert 0 < roll.frames - frames <= polls + 2  # one picture per poll at most, not one per note
        await wait_for(pilot, lambda: "hears   C  key C" in status_text(app))


@async_test
async def test_the_new_keys_are_in_the_palette_with_their_live_keys(tmp_path):
    app = make_app(Rig(), tmp_path, preset=Preset(hotkeys={"ai_mute": "x"}))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.keymap)
        commands = {name: help_text for name, help_text, _ in JamCommands(app.screen)._commands()}
        assert commands["AI on/off"] == "key x · action ai_mute"
        assert commands["Hand over now (go)"] == "key g · action hand_over"
        assert commands["Tap tempo"] == "key t · action tap_tempo"
        await run_command(pilot, "hand over")
        await wait_for(pilot, lambda: "nothing is playing" in log_text(app))
