"""Stop then start in the console plays through the same open ports, so what JACK or a DAW
connected to them stays connected; quitting, a failed jam or other ports close them."""
from __future__ import annotations

import subprocess

import pytest

from engine.clock import FakeClock, MonotonicClock
from engine.midi.system import PortList
from jamtui.kept_ports import KeptPorts
from jamtui.screens.jam import RUNNING, STOPPED
from tests.ui.rig import Rig, async_test, make_app, start, wait_for


def test_ports_a_jam_closes_are_kept_for_the_next_jam_on_the_same_specs():
    rig = Rig()
    kept = KeptPorts(rig.open)
    source, sink = kept.open("virtual:jamtui in", "virtual:jamtui out", MonotonicClock())
    first = (rig.source, rig.sink)
    sink.close()
    source.close()  # as a stopping jam does: still open underneath
    assert not first[0].closed and not first[1].closed
    again = kept.open("virtual:jamtui in", "virtual:jamtui out", MonotonicClock())
    assert (rig.source, rig.sink) == first and len(rig.specs) == 1
    assert again[0].name == first[0].name  # the jam sees the port itself
    for port in reversed(again):
        port.close()
    kept.open("virtual:jamtui in", "Synth", MonotonicClock())  # other ports: the kept ones close
    assert first[0].closed and first[1].closed and len(rig.specs) == 2
    kept.close()  # nothing handed back yet: nothing to close
    assert not rig.sink.closed


def test_a_mid_performer_or_a_fake_clock_gets_fresh_ports_each_time():
    rig = Rig()
    kept = KeptPorts(rig.open)
    for spec, clock in (("file:/x/take.mid", MonotonicClock()), ("virtual:jamtui in", FakeClock())):
        source, sink = kept.open(spec, "Synth", clock)
        assert source is rig.source and sink is rig.sink  # not wrapped: closing closes
        sink.close()
        source.close()
        assert rig.source.closed and rig.sink.closed


@async_test
async def test_stop_then_start_keeps_the_ports_open_and_quit_closes_them(tmp_path, jam_model):
    rig = Rig()
    app = make_app(rig, tmp_path, jam_model)
    async with app.run_test() as pilot:
        await start(app, pilot)
        source, sink = rig.source, rig.sink
        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.state == STOPPED)
        assert not source.closed and not sink.closed
        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.state == RUNNING)
        assert len(rig.specs) == 1 and (rig.source, rig.sink) == (source, sink)
        await pilot.press("q")
    assert source.closed and sink.closed


@pytest.mark.jack
@pytest.mark.timeout(120)
def test_over_jack_a_connection_to_jamtuis_port_survives_stop_and_start(jack_server, tmp_path, jam_model):
    from engine.midi.ports import open_ports
    from jamtui.app import JamApp
    from tests.jack_clients import RecordingClient

    rec = RecordingClient("synth in")

    def connections() -> dict[str, set[str]]:
        """Each JACK port and the ports connected to it, as `jack_lsp -c` lists them."""
        listed: dict[str, set[str]] = {}
        port = None
        for line in subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith((" ", "\t")):
                listed[port].add(line.strip())
            else:
                port = line.strip()
                listed[port] = set()
        return listed

    def jamtui_out() -> str | None:
        return next((port for port in connections() if port.endswith(":jamtui out")), None)

    app = JamApp(api="jack", port_opener=lambda i, o, clock: open_ports(i, o, api="jack", clock=clock),
                 ports_provider=lambda: PortList("jack", [], []), model_loader=lambda path: jam_model,
                 recordings_dir=tmp_path / "recordings", user_presets_dir=tmp_path / "presets")

    @async_test
    async def jam() -> None:
        async with app.run_test() as pilot:
            await start(app, pilot)
            await wait_for(pilot, lambda: jamtui_out() is not None)
            out = jamtui_out()
            subprocess.run(["jack_connect", out, "rec:synth in"], check=True)
            await wait_for(pilot, lambda: connections()[out] == {"rec:synth in"})
            await pilot.press("space")
            await wait_for(pilot, lambda: app.screen.state == STOPPED)
            await pilot.press("space")
            await wait_for(pilot, lambda: app.screen.state == RUNNING)
            assert jamtui_out() == out and connections()[out] == {"rec:synth in"}
            await pilot.press("q")

    try:
        jam()
    finally:
        rec.close()
