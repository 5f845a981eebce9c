"""Real ports on a private JACK dummy server: listing, matching, capture timing, vanish and reopen."""
from __future__ import annotations

import time

import pytest

from engine.clock import MonotonicClock
from engine.events import Kind
from engine.midi.base import PortError
from engine.midi.capture import Capture
from engine.midi.ports import RtMidiInputPort, RtMidiOutputPort
from engine.midi.system import list_ports, match_port
from engine.midi.watch import PortWatcher
from tests.conftest import wait_for

pytestmark = pytest.mark.jack


def test_match_port_exact_suffix_and_errors():
    names = ["a:synth in", "b:piano in", "Midi Through:Midi Through Port-0 14:0"]
    assert match_port(names, "b:piano in", "output") == 1
    assert match_port(names, "piano in", "output") == 1
    assert match_port(names, "Midi Through Port-0", "output") == 2  # ALSA numbers ignored
    with pytest.raises(PortError, match="ambiguous"):
        match_port(names, " in", "output")
    with pytest.raises(PortError, match=r"no MIDI output port matches 'organ'.*'a:synth in'"):
        match_port(names, "organ", "output")


def _virtual_out(name: str):
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="perf")
    out.open_virtual_port(name)
    return out


def test_list_and_open_by_suffix(jack_server):
    sender = _virtual_out("keys out")
    try:
        ports = list_ports("jack")
        assert ports.api == "jack"
        assert any(p.endswith("keys out") for p in ports.inputs)
        port = RtMidiInputPort("keys out", api="jack")
        assert port.name.endswith(":keys out")
        port.close()
        with pytest.raises(PortError, match="no MIDI input port matches 'nothing here'"):
            RtMidiInputPort("nothing here", api="jack")
    finally:
        sender.delete()


def test_capture_timestamps_and_order_over_jack(jack_server):
    clock = MonotonicClock()
    sender = _virtual_out("order out")
    port = RtMidiInputPort("order out", api="jack", clock=clock)
    capture = Capture(port, clock=clock)
    capture.start()
    try:
        time.sleep(0.2)  # JACK connects on its next cycle
        sent_ns = []
        for i in range(50):
            sent_ns.append(clock.now_ns())
            sender.send_message([0x90, 40 + i, 1 + i])
            sender.send_message([0x90, 40 + i, 0])
            time.sleep(0.002)
        got: list = []
        wait_for(lambda: got.extend(capture.drain()) or len(got) >= 100, 5)
        assert [(e.kind, e.number) for e in got] == [
            (kind, 40 + i) for i in range(50) for kind in (Kind.NOTE_ON, Kind.NOTE_OFF)
        ]
        delays_ms = [(got[2 * i].t_ns - sent_ns[i]) / 1e6 for i in range(50)]
        assert min(delays_ms) >= 0  # stamped on arrival, after the send
    finally:
        capture.stop()
        port.close()
        sender.delete()


def test_vanished_input_is_reopened_when_it_returns(jack_server):
    clock = MonotonicClock()
    sender = _virtual_out("flaky out")
    port = RtMidiInputPort("flaky out", api="jack", clock=clock)
    capture = Capture(port, clock=clock)
    capture.start()
    changes: list[bool] = []
    watcher = PortWatcher([port], interval_s=0.05, on_change=lambda _p, up: changes.append(up))
    watcher.start()
    try:
        sender.delete()  # the keyboard is unplugged
        assert wait_for(lambda: changes == [False], 5)
        assert not port.connected
        sender = _virtual_out("flaky out")  # and plugged back in
        assert wait_for(lambda: changes == [False, True], 5)
        time.sleep(0.2)
        sender.send_message([0x90, 61, 99])
        got = wait_for(lambda: capture.drain(), 5)
        assert [(e.kind, e.number, e.value) for e in got] == [(Kind.NOTE_ON, 61, 99)]
    finally:
        watcher.stop()
        capture.stop()
        port.close()
        sender.delete()


def test_flood_of_clock_and_sensing_loses_no_note(jack_server):
    """3,000 clock + active-sensing messages a second on the same port as 200 notes."""
    clock = MonotonicClock()
    sender = _virtual_out("flood out")
    port = RtMidiInputPort("flood out", api="jack", clock=clock)
    capture = Capture(port, clock=clock, maxsize=256)
    got: list = []
    capture.start(got.append)  # a consumer drains as the session will
    try:
        time.sleep(0.2)
        # One sending thread: an rtmidi output is not safe to share between threads.
        next_ns = time.monotonic_ns()
        notes = 0
        for tick in range(3000):  # 1,500 clock + 1,500 sensing pairs per second, for 2 s
            sender.send_message([0xF8])
            sender.send_message([0xFE])
            if tick % 15 == 0:  # a note on/off every 10 ms
                pitch = 36 + notes % 60
                sender.send_message([0x90, pitch, 80])
                sender.send_message([0x80, pitch, 0])
                notes += 1
            next_ns += 666_667
            delay = (next_ns - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
        wait_for(lambda: len(got) >= 2 * notes and capture.stats().active_sensing >= 3000, 5)
        assert notes == 200
        assert [(e.kind, e.number) for e in got] == [
            (kind, 36 + i % 60) for i in range(notes) for kind in (Kind.NOTE_ON, Kind.NOTE_OFF)
        ]
        stats = capture.stats()
        assert stats.dropped == 0
        assert stats.clock_ticks == 3000 and stats.active_sensing == 3000
    finally:
        capture.stop()
        port.close()
        sender.delete()


def test_output_port_sends_to_a_reader(jack_server):
    import rtmidi

    reader = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="reader")
    reader.open_virtual_port("reader in")
    got: list[list[int]] = []
    reader.set_callback(lambda ev, _d: got.append(ev[0]))
    out = RtMidiOutputPort("reader in", api="jack")
    try:
        time.sleep(0.2)
        out.send(bytes([0x91, 70, 20]))
        assert wait_for(lambda: got, 5) == [[0x91, 70, 20]]
        reader.delete()
        assert wait_for(lambda: not out.present(), 5)
    finally:
        out.close()


def test_vanished_output_is_reopened_when_it_returns(jack_server):
    import rtmidi

    def make_reader(got):
        reader = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="synth")
        reader.open_virtual_port("synth in")
        reader.set_callback(lambda ev, _d: got.append(ev[0]))
        return reader

    first: list = []
    reader = make_reader(first)
    out = RtMidiOutputPort("synth in", api="jack")
    watcher = PortWatcher([out], interval_s=0.05)
    watcher.start()
    try:
        reader.delete()  # the synth quits
        assert wait_for(lambda: not out.connected, 5)
        second: list = []
        reader = make_reader(second)  # and comes back, maybe under a new client name
        assert wait_for(lambda: out.connected, 5)
        time.sleep(0.2)
        out.send(bytes([0x90, 72, 50]))
        assert wait_for(lambda: second, 5) == [[0x90, 72, 50]]
        assert watcher.disconnects == 1 and watcher.reconnects == 1
    finally:
        watcher.stop()
        out.close()
        reader.delete()
