"""JamApp driven by Pilot over in-memory ports (no MIDI system needed): ports, model loading,
recordings, the log, and a snapshot of the screen."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from types import SimpleNamespace

import pytest
from textual.widgets import OptionList, Static

from engine.midi.base import PortError
from engine.midi.system import PortList, platform_hint
from jamtui.app import JamApp
from jamtui.screens.jam import RUNNING, STOPPED
from jamtui.widgets.eventlog import EventLog
from jamtui.widgets.ports import PortsPanel
from tests.ui.rig import (
    PORTS,
    Rig,
    async_test,
    log_text,
    make_app,
    ports_listed,
    status_text,
    wait_for,
)


def option_ids(app: JamApp, selector: str) -> list[str]:
    option_list = app.screen.query_one(selector, OptionList)
    return [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]


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
async def test_the_model_loads_in_a_worker_while_the_screen_answers(tmp_path, jam_model):
    release = threading.Event()

    def slow_loader(path):
        release.wait(10)
        return jam_model

    app = JamApp(port_opener=Rig().open, ports_provider=lambda: PORTS, model_loader=slow_loader,
                 recordings_dir=tmp_path / "recordings", user_presets_dir=tmp_path / "presets")
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: "loading model default-model" in status_text(app))
        await pilot.press("m")  # the UI thread is free while the model loads
        await wait_for(pilot, lambda: app.screen.mode == "accompany")
        release.set()
        await wait_for(pilot, lambda: "default-model · cpu" in status_text(app))
        assert "loading" not in status_text(app)


@async_test
async def test_a_model_that_cannot_load_is_reported_and_nothing_starts(tmp_path):
    def broken(path):
        raise OSError("model.safetensors: truncated")

    rig = Rig()
    app = JamApp(port_opener=rig.open, ports_provider=lambda: PORTS, model_loader=broken,
                 recordings_dir=tmp_path / "recordings", user_presets_dir=tmp_path / "presets")
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: "could not load" in status_text(app))
        await ports_listed(pilot)
        await pilot.press("space")
        await wait_for(pilot, lambda: "no model to play with" in status_text(app))
        assert app.screen.state == STOPPED and rig.specs == []


@async_test
async def test_a_port_that_cannot_open_leaves_the_app_stopped(tmp_path, jam_model):
    def missing(input_spec, output_spec, clock):
        raise PortError("no MIDI input port matches 'Stage Piano'")

    app = JamApp(port_opener=missing, ports_provider=lambda: PORTS, model_loader=lambda path: jam_model,
                 recordings_dir=tmp_path, user_presets_dir=tmp_path / "presets")
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        await pilot.press("space")
        await wait_for(pilot, lambda: "no MIDI input port matches 'Stage Piano'" in status_text(app))
        assert app.screen.state == STOPPED


@async_test
async def test_enter_in_the_file_field_plays_that_file(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model)
    async with app.run_test() as pilot:
        await ports_listed(pilot)
        await pilot.click("#midi-file")
        await pilot.press(*"/x/demo.mid", "enter")
        await wait_for(pilot, lambda: app.screen.state == RUNNING)
        assert rig.specs == [("file:/x/demo.mid", "virtual:jamtui out")]


@async_test
async def test_jam_mode_starts_at_once_on_the_given_ports_and_keeps_them_chosen(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model, input_spec="Piano", output_spec="virtual:jamtui out", autostart=True)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.screen.state == RUNNING)
        assert rig.specs == [("Piano", "virtual:jamtui out")]
        await ports_listed(pilot)
        await wait_for(pilot, lambda: app.screen.query_one(PortsPanel).selection()
                       == ("Stage Piano", "virtual:jamtui out"))


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
    # A stand-in model: the screen shows where it runs, which must not depend on this machine.
    model = SimpleNamespace(device=SimpleNamespace(type="cpu"), dtype="torch.float32")

    async def ready(pilot) -> None:
        await ports_listed(pilot)
        await wait_for(pilot, lambda: "cpu float32" in status_text(pilot.app))
        pilot.app.screen.query_one(EventLog).clear()  # log lines carry the time of day

    assert snap_compare(make_app(Rig(), tmp_path, (model, None)), terminal_size=(100, 30), run_before=ready)
