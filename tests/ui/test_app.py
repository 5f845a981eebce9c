"""JamApp driven by Pilot over real engine objects on in-memory ports (no MIDI system needed)."""
from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import time

import mido
import pytest
from textual.widgets import OptionList, RichLog, Static

from engine.clock import MonotonicClock
from engine.events import ALL_NOTES_OFF_CC, ALL_SOUND_OFF_CC, RESET_CONTROLLERS_CC, Kind
from engine.midi.base import PortError
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.midi.ports import PortList, platform_hint
from engine.midi.thru import Thru
from jamtui.app import JamApp
from jamtui.screens.jam import RUNNING, STOPPED
from jamtui.widgets.meters import Meters
from jamtui.widgets.ports import PortsPanel

PORTS = PortList("fake", ["Stage Piano"], ["Synth"])
NOTE_ON, NOTE_OFF = (0x90, 60, 100), (0x80, 60, 0)


class Rig:
    """A Thru factory over memory ports that keeps what it built for the test to look at."""

    def __init__(self, sink_cls=MemoryOutputPort) -> None:
        self.clock = MonotonicClock()
        self.source = MemoryInputPort()
        self.sink = sink_cls(self.clock)
        self.specs: list[tuple[str, str]] = []
        self.thru: Thru | None = None

    def factory(self, input_spec: str, output_spec: str) -> Thru:
        self.specs.append((input_spec, output_spec))
        self.thru = Thru(self.source, self.sink, clock=self.clock)
        return self.thru

    def play(self, message: tuple[int, ...]) -> None:
        self.source.feed(bytes(message), self.clock.now_ns())

    def controls(self, number: int) -> list[int]:
        return [e.channel for e in self.sink.events if e.kind is Kind.CONTROL and e.number == number]


class FailingOnceOutputPort(MemoryOutputPort):
    """Its first note-on raises a non-port error, as a driver bug would; later sends work."""

    failed = False

    def send(self, message: bytes) -> None:
        if message[0] & 0xF0 == 0x90 and not self.failed:
            self.failed = True
            raise RuntimeError("driver exploded")
        super().send(message)


def async_test(fn):
    # Runs the async body in its own loop, so the tests need no asyncio plugin.
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(fn(*args, **kwargs))

    return wrapper


async def wait_for(pilot, predicate, timeout_s: float = 5.0) -> None:
    # Thru's threads run on the real clock, so the UI side can only poll for their result.
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__doc__ or predicate}")
        await pilot.pause(0.02)


def make_app(rig: Rig, tmp_path, ports_provider=lambda: PORTS) -> JamApp:
    return JamApp(thru_factory=rig.factory, ports_provider=ports_provider, recordings_dir=tmp_path / "recordings")


def option_ids(app: JamApp, selector: str) -> list[str]:
    option_list = app.screen.query_one(selector, OptionList)
    return [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]


async def start(app: JamApp, pilot) -> None:
    await wait_for(pilot, lambda: app.screen.query_one("#inputs", OptionList).option_count > 0)
    await pilot.press("space")
    await wait_for(pilot, lambda: app.screen.state == RUNNING)


def status_text(app: JamApp) -> str:
    return str(app.screen.query_one("#status", Static).render())


def log_text(app: JamApp) -> str:
    # Wrapping splits long paths over lines; joining them back makes the text searchable.
    lines = [line.text.rstrip() for line in app.screen.query_one(RichLog).lines]
    return " ".join(lines) + "\n" + "".join(lines)


def stats(app: JamApp):
    return app.screen.query_one(Meters).stats


def sent_at_least(app: JamApp, n: int):
    return lambda: stats(app) is not None and stats(app).scheduler.sent >= n


def assert_ends_in_silence(rig: Rig) -> None:
    tail = [(e.channel, e.number) for e in rig.sink.events[-32:]]
    assert tail == [(ch, cc) for ch in range(16) for cc in (ALL_NOTES_OFF_CC, RESET_CONTROLLERS_CC)]
    assert rig.sink.closed and rig.thru.stopped.is_set()


@async_test
async def test_lists_ports_and_s_rescans(tmp_path):
    scans = [PORTS, PortList("fake", ["Stage Piano", "Drum Pad"], ["Synth"])]
    app = make_app(Rig(), tmp_path, ports_provider=lambda: scans.pop(0))
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#outputs", OptionList).option_count > 0)
        assert option_ids(app, "#inputs") == ["virtual:jamtui in", "Stage Piano", "file"]
        assert option_ids(app, "#outputs") == ["virtual:jamtui out", "Synth"]
        assert not app.screen.query_one(PortsPanel).has_class("-failed")
        await pilot.press("down")  # choose Stage Piano; the choice survives the rescan
        await pilot.press("s")
        await wait_for(pilot, lambda: not scans)
        await wait_for(pilot, lambda: "Drum Pad" in option_ids(app, "#inputs"))
        assert app.screen.query_one(PortsPanel).selection() == ("Stage Piano", "virtual:jamtui out")


@async_test
async def test_without_a_midi_system_the_app_runs_and_says_why(tmp_path):
    rig = Rig()

    def no_midi() -> PortList:
        raise PortError("no MIDI system found: no ALSA sequencer (/dev/snd/seq) and no running JACK server")

    app = make_app(rig, tmp_path, ports_provider=no_midi)
    async with app.run_test() as pilot:
        panel = app.screen.query_one(PortsPanel)
        await wait_for(pilot, lambda: panel.has_class("-failed"))
        error = str(app.screen.query_one("#ports-error", Static).render())
        assert "no MIDI system found" in error and platform_hint() in error
        await pilot.press("space")
        await pilot.pause()
        assert app.is_running and app.screen.state == STOPPED and rig.specs == []


@async_test
async def test_space_starts_and_a_note_reaches_meters_and_output(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await start(app, pilot)
        assert rig.specs == [("virtual:jamtui in", "virtual:jamtui out")]
        rig.play(NOTE_ON)
        await wait_for(pilot, sent_at_least(app, 1))
        assert (stats(app).capture.received, stats(app).scheduler.sounding) == (1, 1)
        assert "sounding 1" in app.screen.query_one(Meters).render().plain
        on = rig.sink.events[0]
        assert (on.kind, on.number, on.value) == (Kind.NOTE_ON, 60, 100)

        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.state == STOPPED)
        assert (rig.sink.events[1].kind, rig.sink.events[1].number) == (Kind.NOTE_OFF, 60)
        assert_ends_in_silence(rig)


@async_test
async def test_p_panics_with_all_sound_off(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await start(app, pilot)
        rig.play(NOTE_ON)
        await wait_for(pilot, sent_at_least(app, 1))
        await pilot.press("p")
        await wait_for(pilot, lambda: len(rig.controls(ALL_SOUND_OFF_CC)) == 16)
        assert (rig.sink.events[1].kind, rig.sink.events[1].number) == (Kind.NOTE_OFF, 60)
        assert rig.controls(ALL_SOUND_OFF_CC) == list(range(16))
        assert app.screen.state == RUNNING  # panic silences; the jam goes on


@async_test
async def test_q_stops_in_silence_before_quitting(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await start(app, pilot)
        rig.play(NOTE_ON)
        await wait_for(pilot, sent_at_least(app, 1))
        await pilot.press("q")
    assert not app.is_running
    assert (rig.sink.events[1].kind, rig.sink.events[1].number) == (Kind.NOTE_OFF, 60)
    assert_ends_in_silence(rig)


@async_test
async def test_an_engine_error_stops_in_silence_and_is_reported(tmp_path):
    rig = Rig(sink_cls=FailingOnceOutputPort)
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await start(app, pilot)
        rig.play(NOTE_ON)
        await wait_for(pilot, lambda: app.screen.state == STOPPED)
        assert_ends_in_silence(rig)
        assert "driver exploded" in status_text(app)


@async_test
async def test_a_port_that_cannot_open_leaves_the_app_stopped(tmp_path):
    def missing(input_spec: str, output_spec: str) -> Thru:
        raise PortError("no MIDI input port matches 'Stage Piano'")

    app = JamApp(thru_factory=missing, ports_provider=lambda: PORTS, recordings_dir=tmp_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#inputs", OptionList).option_count > 0)
        await pilot.press("space")
        await wait_for(pilot, lambda: "no MIDI input port matches 'Stage Piano'" in status_text(app))
        assert app.screen.state == STOPPED


@async_test
async def test_enter_in_the_file_field_plays_that_file(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#inputs", OptionList).option_count > 0)
        await pilot.click("#midi-file")
        await pilot.press(*"/x/demo.mid", "enter")
        await wait_for(pilot, lambda: app.screen.state == RUNNING)
        assert rig.specs == [("file:/x/demo.mid", "virtual:jamtui out")]


@async_test
async def test_r_records_the_jam_to_a_midi_file(tmp_path):
    rig = Rig()
    app = make_app(rig, tmp_path)
    async with app.run_test() as pilot:
        await pilot.press("r")
        await start(app, pilot)
        await wait_for(pilot, lambda: app.screen.recording_now)
        rig.play(NOTE_ON)
        rig.play(NOTE_OFF)
        await wait_for(pilot, sent_at_least(app, 2))
        await pilot.press("r")
        await wait_for(pilot, lambda: not app.screen.recording_now)
        assert app.screen.state == RUNNING
    [midi_path] = (tmp_path / "recordings").glob("*.mid")
    notes = [m.note for m in mido.MidiFile(midi_path) if m.type == "note_on"]
    assert notes == [60]
    assert not list((tmp_path / "recordings").glob("*.partial.jsonl"))


@async_test
async def test_an_interrupted_recording_is_recovered_at_start(tmp_path):
    directory = tmp_path / "recordings"
    directory.mkdir()
    header = {"format": 1, "base": "jam-crashed", "wall_start": "2024-01-01T12:00:00.000+00:00",
              "clock_start_ns": 0, "meta": {}}
    event = {"p": "performer", "t_s": 0.5, "kind": "NOTE_ON", "ch": 0, "n": 64, "v": 90}
    (directory / "jam-crashed.partial.jsonl").write_text(json.dumps(header) + "\n" + json.dumps(event) + "\n")
    app = make_app(Rig(), tmp_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: "jam-crashed.mid from a crashed session" in log_text(app))
    assert (directory / "jam-crashed.mid").exists()


@async_test
async def test_log_records_show_in_the_log_panel_and_logging_is_restored(tmp_path):
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    app = make_app(Rig(), tmp_path)
    async with app.run_test() as pilot:
        threading_log = logging.getLogger("engine.somewhere")
        await asyncio.to_thread(threading_log.warning, "port %s vanished", "Stage Piano")
        await wait_for(pilot, lambda: "port Stage Piano vanished" in log_text(app))
    assert root.handlers == handlers_before


@pytest.mark.skipif(importlib.util.find_spec("pytest_textual_snapshot") is None,
                    reason="needs pytest-textual-snapshot")
def test_main_screen_snapshot(snap_compare, tmp_path):
    async def ports_listed(pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#outputs", OptionList).option_count > 0)

    assert snap_compare(make_app(Rig(), tmp_path), terminal_size=(100, 30), run_before=ports_listed)
