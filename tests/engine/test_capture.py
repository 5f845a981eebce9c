"""Capture on an in-memory port: folding, pedal, clock/sensing/sysex side channels, bounded queue."""
from __future__ import annotations

import threading

from engine.clock import FakeClock
from engine.events import Kind
from engine.midi.capture import Capture
from engine.midi.memory import MemoryInputPort

MS = 1_000_000


def make(maxsize=2048):
    clock = FakeClock()
    port = MemoryInputPort()
    cap = Capture(port, clock=clock, maxsize=maxsize)
    cap.start()
    return clock, port, cap


def test_velocity_zero_folds_to_off_and_pedal_is_kept():
    _, port, cap = make()
    port.feed(bytes([0x90, 60, 100]), 1 * MS)
    port.feed(bytes([0xB0, 64, 127]), 2 * MS)
    port.feed(bytes([0x90, 60, 0]), 3 * MS)
    port.feed(bytes([0xB0, 64, 0]), 4 * MS)
    got = [(e.t_ns, e.kind, e.number, e.value) for e in cap.drain()]
    assert got == [
        (1 * MS, Kind.NOTE_ON, 60, 100),
        (2 * MS, Kind.CONTROL, 64, 127),
        (3 * MS, Kind.NOTE_OFF, 60, 0),
        (4 * MS, Kind.CONTROL, 64, 0),
    ]


def test_clock_and_sensing_never_enter_the_queue():
    clock, port, cap = make(maxsize=8)
    for i in range(3000):
        port.feed(bytes([0xF8]), i * MS)
        port.feed(bytes([0xFE]), i * MS)
    port.feed(bytes([0x90, 60, 90]), 3000 * MS)
    events = cap.drain()
    assert [(e.kind, e.number) for e in events] == [(Kind.NOTE_ON, 60)]
    stats = cap.stats()
    assert (stats.clock_ticks, stats.active_sensing, stats.dropped) == (3000, 3000, 0)


def test_tempo_from_clock_ticks():
    clock, port, cap = make()
    tick_ns = round(60e9 / (100 * 24))  # 100 bpm
    for i in range(48):
        port.feed(bytes([0xF8]), i * tick_ns)
    clock.set(48 * tick_ns)
    assert abs(cap.tempo_bpm() - 100.0) < 0.01
    clock.set(48 * tick_ns + 600 * MS)  # the clock stopped
    assert cap.tempo_bpm() is None


def test_sysex_kept_aside_and_garbage_counted():
    _, port, cap = make()
    port.feed(bytes([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7]), 0)
    port.feed(bytes([0x45, 0x10]), 0)  # running-status fragment: not a message on its own
    port.feed(bytes([0x90, 200, 10]), 0)  # data byte out of range
    assert cap.drain() == []
    stats = cap.stats()
    assert (stats.sysex, stats.parse_errors) == (1, 2)
    assert cap.sysex[0].data[0] == 0xF0


def test_full_queue_counts_drops():
    _, port, cap = make(maxsize=4)
    for i in range(10):
        port.feed(bytes([0x90, 60 + i, 90]), i)
    assert len(cap.drain()) == 4
    assert cap.stats().dropped == 6


def test_active_sensing_liveness():
    clock, port, cap = make()
    assert cap.sender_alive() is None
    port.feed(bytes([0xFE]), 0)
    clock.set(200 * MS)
    assert cap.sender_alive() is True
    clock.set(400 * MS)
    assert cap.sender_alive() is False


def test_handler_thread_sees_events_in_order_and_reports_errors():
    clock = FakeClock()
    port = MemoryInputPort()
    cap = Capture(port, clock=clock)
    seen, errors = [], []
    done = threading.Event()

    def handler(event):
        seen.append(event.number)
        if event.number == 70:
            raise RuntimeError("boom")

    cap.start(handler, on_error=lambda exc: (errors.append(exc), done.set()))
    for pitch in range(60, 75):
        port.feed(bytes([0x90, pitch, 90]), 0)
    assert done.wait(5)
    cap.stop()
    assert seen == list(range(60, 71))
    assert isinstance(errors[0], RuntimeError)
