"""Traps a new user fell into, gone: a path typed into a port list, jamtui's own ports offered
back to it, meters that lie before and after a jam, a log that misses starts and stops."""
from __future__ import annotations

import math

from textual.widgets import Input, OptionList
from textual.widgets._toast import Toast, ToastRack

from engine.clock import FakeClock
from engine.midi.file_input import FilePlayerPort
from engine.midi.memory import MemoryOutputPort
from engine.midi.midifile import TimedMessage
from engine.midi.system import PortList
from jamtui.screens.jam import RUNNING, STOPPED
from jamtui.widgets.meters import Meters
from jamtui.widgets.ports import FILE_OPTION, PortsPanel
from tests.ui.rig import (
    Rig,
    async_test,
    log_text,
    make_app,
    meters_text,
    ports_listed,
    start,
    wait_for,
)
from tests.ui.test_parts import metrics


def path_field(app) -> Input:
    return app.screen.query_one("#midi-file", Input)


def chosen_input(app) -> str:
    inputs = app.screen.query_one("#inputs", OptionList)
    return inputs.get_option_at_index(inputs.highlighted).id


@async_test
async def test_a_path_typed_into_the_port_list_goes_into_the_path_field_and_fires_no_hotkey(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        assert isinstance(app.focused, OptionList)  # where a new user starts typing
        # Every hotkey's key is in this path: mode, presets, panic, record, rescan, quit, start.
        keys = [*"/takes/mp3-rs", "left_square_bracket", "right_square_bracket", "space", *"12q.mid"]
        await pilot.press(*keys)
        assert path_field(app).value == "/takes/mp3-rs[] 12q.mid"
        assert app.focused is path_field(app) and chosen_input(app) == FILE_OPTION
        assert app.is_running and app.screen.state == STOPPED and rig.specs == []
        assert app.screen.mode == "call-and-response" and not app.screen.status.recording
        assert app.screen.status.preset == "default"
        await pilot.press("escape")  # back to the list, where the keys are hotkeys again
        assert isinstance(app.focused, OptionList)
        await pilot.press("m")
        assert app.screen.mode == "accompany"


@async_test
async def test_moving_onto_the_file_entry_puts_the_cursor_in_the_path_field(tmp_path):
    app = make_app(Rig(), tmp_path)
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        await pilot.press("down", "down")  # jamtui in, Stage Piano, then the file entry
        assert chosen_input(app) == FILE_OPTION and app.focused is path_field(app)
        await pilot.press(*"~/a.mid")
        assert path_field(app).value == "~/a.mid"
        await pilot.press("ctrl+u", "up")  # emptied and left: the port above is the choice again
        assert isinstance(app.focused, OptionList) and chosen_input(app) == "Stage Piano"


@async_test
async def test_enter_in_an_empty_path_field_starts_nothing(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        await pilot.press("down")  # Stage Piano: Enter in the path field must not start it
        await pilot.click("#midi-file")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "type the path of a .mid file" in log_text(app))
        assert app.screen.state == STOPPED and rig.specs == []


@async_test
async def test_jamtuis_own_ports_are_not_offered(tmp_path):
    # As ALSA lists them while a jam runs: its virtual ports and the ends it connects with.
    ports = PortList("alsa", ["Stage Piano 20:0", "jamtui:jamtui out 128:1", "jamtui:play 128:2"],
                     ["Synth 21:0", "jamtui:jamtui in 128:0", "jamtui-01:listen", "jamtuish:in"])
    app = make_app(Rig(), tmp_path, ports_provider=lambda: ports)
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        lists = {name: app.screen.query_one(name, OptionList) for name in ("#inputs", "#outputs")}
        ids = {name: [ol.get_option_at_index(i).id for i in range(ol.option_count)] for name, ol in lists.items()}
        assert ids["#inputs"] == ["virtual:jamtui in", "Stage Piano 20:0", FILE_OPTION]
        assert ids["#outputs"] == ["virtual:jamtui out", "Synth 21:0", "jamtuish:in"]


def test_meters_show_a_dash_until_there_is_a_figure_and_dim_after_a_stop():
    meters = Meters()
    meters.started()
    meters.show(metrics(lateness_ms_p99=math.nan, lead_s=math.nan), None, now_s=1.0)
    assert "lead –  late p99 –" in meters.render().plain and "nan" not in meters.render().plain
    meters.show(metrics(notes_in=3, lateness_ms_p99=2.25, lead_s=1.5), None, now_s=1.2)
    assert "late p99 2.2 ms" in meters.render().plain and meters.active("in")
    meters.stopped()
    assert not meters.active("in") and meters.rate("in") == 0.0
    text = meters.render()
    assert "notes in  3" in text.plain  # the last jam's figures stay, dimmed
    assert any("dim" in str(span.style) and span.start == 0 and span.end == len(text) for span in text.spans)


@async_test
async def test_starts_stops_and_the_end_of_a_mid_performer_are_logged_and_meters_go_dark(tmp_path, jam_model):
    players = []

    def open_file_player(input_spec, output_spec, clock):
        player = FilePlayerPort([TimedMessage(0.1, bytes((0x90, 60, 80))), TimedMessage(0.3, bytes((0x80, 60, 0)))],
                                clock, name="take.mid")
        players.append(player)
        return player, MemoryOutputPort(clock)

    app = make_app(Rig(), tmp_path, jam_model, clock_factory=FakeClock)
    app.bridge.port_opener = open_file_player
    async with app.run_test() as pilot:
        await start(app, pilot)
        await wait_for(pilot, lambda: "jam started: take.mid" in log_text(app))
        assert app.screen.query_one(Meters).running
        app.bridge.jam.advance(1.0, pump=players[0].pump)
        await wait_for(pilot, lambda: "the .mid performer has played to its end" in log_text(app))
        assert app.screen.state == RUNNING
        await wait_for(pilot, lambda: "notes in  1" in meters_text(app))
        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.state == STOPPED)
        await wait_for(pilot, lambda: "jam stopped" in log_text(app))
        assert not app.screen.query_one(Meters).running
        assert "notes in  1" in meters_text(app) and "●" not in meters_text(app)


@async_test
async def test_notifications_are_logged_and_shown_over_the_ports_not_the_log(tmp_path):
    app = make_app(Rig(), tmp_path)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ports_listed(pilot)
        await pilot.press("p")  # nothing plays: said in a toast and in the log
        await wait_for(pilot, lambda: "nothing is playing" in log_text(app))
        rack = app.screen.get_child_by_type(ToastRack)
        await wait_for(pilot, lambda: rack.query(Toast))
        await pilot.pause()
        log_region = app.screen.query_one("#log").region
        for toast in rack.query(Toast):
            assert not toast.region.overlaps(log_region)
            assert toast.region.right <= app.screen.query_one(PortsPanel).region.right
