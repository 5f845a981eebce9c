"""The jam itself, through the console: the shipped model answers a phrase fed into the input
port, and the performer's hotkeys (mode, preset, panic, record, quit) reach the session."""
from __future__ import annotations

import mido
import pytest

from engine.clock import FakeClock
from engine.duet.turns import phrase_gap_s
from engine.events import ALL_SOUND_OFF_CC, Kind, Note
from engine.midi.memory import MemoryOutputPort
from engine.presets.files import load_preset
from engine.presets.schema import Preset
from jamtui.screens.jam import RUNNING, STOPPED
from tests.ui.rig import (
    PHRASE,
    Rig,
    assert_balanced,
    assert_ends_in_silence,
    async_test,
    log_text,
    make_app,
    meters_text,
    metrics,
    play_phrase,
    ports_listed,
    start,
    status_text,
    wait_for,
)


class FailingOnceOutputPort(MemoryOutputPort):
    """Its first note-on raises a non-port error, as a driver bug would; later sends work."""

    failed = False

    def send(self, message: bytes) -> None:
        if message[0] & 0xF0 == 0x90 and not self.failed:
            self.failed = True
            raise RuntimeError("driver exploded")
        super().send(message)


def jam(app):
    return app.bridge.jam


@async_test
async def test_a_phrase_gets_an_answer_and_quitting_ends_in_silence(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model)
    async with app.run_test() as pilot:
        await start(app, pilot)
        assert rig.specs == [("virtual:jamtui in", "virtual:jamtui out")]
        assert jam(app).mode == "call-and-response" and "your turn" in status_text(app)
        await play_phrase(rig, pilot)
        await wait_for(pilot, lambda: metrics(app) is not None and metrics(app).notes_out > 0)
        assert metrics(app).notes_in == len(PHRASE)
        assert rig.note_ons() and all(e.channel == 0 for e in rig.note_ons())
        await wait_for(pilot, lambda: "AI answers until" in log_text(app))
        await wait_for(pilot, lambda: f"responses {metrics(app).responses}  p50" in meters_text(app))
        assert metrics(app).response_latency_ms_p50 > 0
        await pilot.press("q")
    assert not app.is_running
    assert_ends_in_silence(rig)


@async_test
async def test_on_a_fake_clock_the_answer_sounds_on_its_cue(tmp_path, jam_model):
    # The music on virtual time, step by step: what the console shows follows it exactly.
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, clock_factory=FakeClock)
    async with app.run_test() as pilot:
        await start(app, pilot)
        jam_now = jam(app)
        t_s = 0.5
        for pitch in PHRASE:
            jam_now.advance(t_s)
            rig.play((0x90, pitch, 90))
            jam_now.advance(t_s + 0.09)
            rig.play((0x80, pitch, 0))
            t_s += 0.1
        last_up_ns = rig.clock.now_ns()
        # Eight notes 0.1 s apart: four of his steps of silence end the phrase, not the preset's 0.8 s.
        gap_s = phrase_gap_s([Note(0.5 + 0.1 * i, 0.59 + 0.1 * i, p, 90) for i, p in enumerate(PHRASE)],
                             jam_now.preset.phrase_gap_s)
        assert gap_s == pytest.approx(0.4)
        cue_ns = last_up_ns + round(gap_s * 1e9)
        jam_now.advance(t_s + gap_s + 2.0)
        first_on_ns = rig.note_ons()[0].t_ns
        assert cue_ns <= first_on_ns < cue_ns + 10_000_000  # within one 10 ms step of virtual time
        await wait_for(pilot, lambda: metrics(app) is not None and metrics(app).responses == 1)
        assert metrics(app).notes_in == len(PHRASE)
        await wait_for(pilot, lambda: "AI answers until" in log_text(app))
        await pilot.press("q")
    assert_ends_in_silence(rig)


@async_test
async def test_mode_hotkeys_switch_the_session_mode(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model)
    async with app.run_test() as pilot:
        await start(app, pilot)
        await pilot.press("m")
        await wait_for(pilot, lambda: jam(app).mode == "accompany")
        await wait_for(pilot, lambda: "mode    accompany" in status_text(app))
        await pilot.press("3")
        await wait_for(pilot, lambda: jam(app).mode == "continuous")
        await wait_for(pilot, lambda: "mode accompany → continuous" in log_text(app))
        # Continuous: the model plays with no one to answer.
        await wait_for(pilot, lambda: metrics(app).notes_out > 0)
        await pilot.press("1")
        await wait_for(pilot, lambda: metrics(app).mode == "call-and-response")
        assert "your turn" in status_text(app)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.state == STOPPED)
    assert_ends_in_silence(rig)


@async_test
async def test_a_mode_chosen_while_stopped_is_the_mode_the_jam_starts_in(tmp_path, jam_model):
    app = make_app(Rig(), tmp_path, jam_model)
    async with app.run_test() as pilot:
        await pilot.press("2")
        await start(app, pilot)
        assert jam(app).mode == "accompany"


@async_test
async def test_panic_silences_at_once_and_the_jam_goes_on(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, preset=load_preset("continuous", user_dir=tmp_path))
    async with app.run_test() as pilot:
        await start(app, pilot)
        await wait_for(pilot, lambda: jam(app).output_stats().sounding > 0)
        await pilot.press("p")
        await wait_for(pilot, lambda: len(rig.controls(ALL_SOUND_OFF_CC)) == 16)
        events = list(rig.sink.events)
        last_sound_off = max(i for i, e in enumerate(events)
                             if e.kind is Kind.CONTROL and e.number == ALL_SOUND_OFF_CC)
        assert_balanced(events[:last_sound_off + 1])
        await wait_for(pilot, lambda: "PANIC" in log_text(app))
        ons_before = len(rig.note_ons())
        await wait_for(pilot, lambda: len(rig.note_ons()) > ons_before)  # it plays on
        assert app.screen.state == RUNNING
        await pilot.press("q")
    assert_ends_in_silence(rig)


@async_test
async def test_next_and_previous_preset_reach_the_session(tmp_path, jam_model):
    app = make_app(Rig(), tmp_path, jam_model)
    async with app.run_test() as pilot:
        await start(app, pilot)
        # Shipped presets by name: accompany, call-and-response, continuous, default, imitate.
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: jam(app).preset.name == "imitate")
        await wait_for(pilot, lambda: "preset  imitate" in status_text(app))
        await wait_for(pilot, lambda: "preset → imitate" in log_text(app))
        await pilot.press("left_square_bracket", "left_square_bracket")
        await wait_for(pilot, lambda: jam(app).preset.name == "continuous")
        await wait_for(pilot, lambda: jam(app).mode == "continuous")  # the preset brings its mode
        await wait_for(pilot, lambda: "mode    continuous" in status_text(app))


@async_test
async def test_a_preset_chosen_while_stopped_starts_the_jam(tmp_path, jam_model):
    app = make_app(Rig(), tmp_path, jam_model)
    async with app.run_test() as pilot:
        await pilot.press("left_square_bracket")
        assert "preset  continuous" in status_text(app) and app.screen.mode == "continuous"
        await start(app, pilot)
        assert jam(app).preset.name == "continuous" and jam(app).mode == "continuous"


@async_test
async def test_the_preset_hotkeys_remap_the_keys(tmp_path, jam_model):
    rig = Rig()
    preset = Preset(mode="continuous", hotkeys={"panic": "escape", "mode": "x", "bogus": "y", "record": "q"})
    app = make_app(rig, tmp_path, jam_model, preset=preset)
    async with app.run_test() as pilot:
        await start(app, pilot)
        await wait_for(pilot, lambda: "hotkeys.bogus: no such action" in log_text(app))
        assert "hotkeys.record: 'q' is already the key of quit" in log_text(app)
        await pilot.press("x")
        await wait_for(pilot, lambda: jam(app).mode == "call-and-response")
        await pilot.press("m")  # no longer the mode key
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(rig.controls(ALL_SOUND_OFF_CC)) == 16)
        assert jam(app).mode == "call-and-response"


@async_test
async def test_an_output_error_stops_the_jam_in_silence_and_is_reported(tmp_path, jam_model):
    rig = Rig(sink_cls=FailingOnceOutputPort)
    app = make_app(rig, tmp_path, jam_model, preset=Preset(mode="continuous"))
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        await pilot.press("space")  # the first AI note fails: running and stopped again within moments
        await wait_for(pilot, lambda: "driver exploded" in status_text(app))
        await wait_for(pilot, lambda: app.screen.state == STOPPED)
        assert_ends_in_silence(rig)


@async_test
async def test_r_records_both_players_to_a_midi_file(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model)
    async with app.run_test() as pilot:
        await pilot.press("r")
        assert "record armed" in status_text(app)
        await start(app, pilot)
        await wait_for(pilot, lambda: app.screen.recording_now)
        await play_phrase(rig, pilot)
        await wait_for(pilot, lambda: metrics(app) is not None and metrics(app).notes_out > 0)
        await pilot.press("r")
        await wait_for(pilot, lambda: not app.screen.recording_now)
        assert app.screen.state == RUNNING
    [midi_path] = (tmp_path / "recordings").glob("*.mid")
    performer, ai = [[m.note for m in track if m.type == "note_on" and m.velocity > 0]
                     for track in mido.MidiFile(midi_path).tracks[-2:]]
    assert performer == PHRASE and ai
    assert not list((tmp_path / "recordings").glob("*.partial.jsonl"))
