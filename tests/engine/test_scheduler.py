"""Output scheduler on a fake clock: exact event lists, re-strikes, cancel, late drops, silence."""
from __future__ import annotations

import threading

import pytest

from engine.clock import FakeClock, MonotonicClock
from engine.events import Kind, control, note_off, note_on
from engine.midi.memory import MemoryOutputPort
from engine.midi.scheduler import OutputScheduler

MS = 1_000_000


def rows(port: MemoryOutputPort) -> list[tuple[float, str, int, int]]:
    """(t_ms, kind, number, value) of what the port received, silence tail excluded."""
    out = []
    for e in port.events:
        if e.kind is Kind.CONTROL and e.number in (121, 123, 120):
            continue
        if e.kind is Kind.CONTROL and e.number == 64 and e.value == 0 and e.channel != 0:
            continue
        out.append((e.t_ns / MS, e.kind.name, e.number, e.value))
    return out


def run_until(clock: FakeClock, sched: OutputScheduler, t_ms: float) -> None:
    """Advance the fake clock to each deadline in turn, as the scheduler thread would."""
    while (nxt := sched.next_deadline_ns()) is not None and nxt <= t_ms * MS:
        clock.set(max(clock.now_ns(), nxt))
        sched.step()
    clock.set(max(clock.now_ns(), round(t_ms * MS)))
    sched.step()


@pytest.fixture
def rig():
    clock = FakeClock()
    port = MemoryOutputPort(clock)
    return clock, port, OutputScheduler(port, clock, late_drop_ms=20)


def test_sends_at_deadlines_in_order(rig):
    clock, port, sched = rig
    sched.schedule_note(10 * MS, 20 * MS, 60, 90)
    sched.schedule_note(15 * MS, 30 * MS, 64, 70)
    sched.schedule(control(5 * MS, 64, 127))
    run_until(clock, sched, 40)
    assert rows(port) == [
        (5.0, "CONTROL", 64, 127),
        (10.0, "NOTE_ON", 60, 90),
        (15.0, "NOTE_ON", 64, 70),
        (20.0, "NOTE_OFF", 60, 0),
        (30.0, "NOTE_OFF", 64, 0),
    ]
    assert sched.stats().lateness_ms_max == 0.0
    assert sched.sounding() == set()


def test_restruck_pitch_is_not_cut_by_older_off(rig):
    clock, port, sched = rig
    sched.schedule_note(0, 100 * MS, 60, 80)  # long note
    sched.schedule_note(50 * MS, 200 * MS, 60, 90)  # re-strike while the first sounds
    run_until(clock, sched, 300)
    assert rows(port) == [
        (0.0, "NOTE_ON", 60, 80),
        (50.0, "NOTE_OFF", 60, 0),  # the first note ends where the second begins
        (50.0, "NOTE_ON", 60, 90),
        (200.0, "NOTE_OFF", 60, 0),  # the first note's off at 100 ms was skipped
    ]


def test_same_instant_off_then_on(rig):
    clock, port, sched = rig
    sched.schedule_note(0, 10 * MS, 60, 80)
    sched.schedule_note(10 * MS, 20 * MS, 60, 80)
    run_until(clock, sched, 30)
    assert [r[1] for r in rows(port)] == ["NOTE_ON", "NOTE_OFF", "NOTE_ON", "NOTE_OFF"]


def test_late_onset_dropped_and_its_off_skipped(rig):
    clock, port, sched = rig
    sched.schedule_note(10 * MS, 100 * MS, 60, 80)
    clock.set(50 * MS)  # 40 ms late > 20 ms bound
    sched.step()
    run_until(clock, sched, 200)
    assert rows(port) == []
    assert sched.dropped_late == 1


def test_slightly_late_onset_still_played(rig):
    clock, port, sched = rig
    sched.schedule_note(10 * MS, 100 * MS, 60, 80)
    clock.set(25 * MS)
    sched.step()
    run_until(clock, sched, 200)
    assert rows(port) == [(25.0, "NOTE_ON", 60, 80), (100.0, "NOTE_OFF", 60, 0)]
    assert sched.stats().lateness_ms_max == 15.0


def test_cancel_drops_future_onsets_and_keeps_offs_of_committed(rig):
    clock, port, sched = rig
    sched.schedule_note(0, 150 * MS, 60, 80)  # committed, ends after the cut
    sched.schedule_note(120 * MS, 180 * MS, 62, 80)  # starts after the cut
    sched.schedule(control(110 * MS, 64, 127))  # pedal after the cut: dropped
    run_until(clock, sched, 50)
    assert sched.cancel(after_ns=100 * MS) == 1
    run_until(clock, sched, 300)
    assert rows(port) == [(0.0, "NOTE_ON", 60, 80), (150.0, "NOTE_OFF", 60, 0)]


def test_cancel_in_the_past_ends_notes_that_started_after_it(rig):
    clock, port, sched = rig
    sched.schedule_note(10 * MS, 500 * MS, 60, 80)
    sched.schedule_note(60 * MS, 500 * MS, 64, 80)
    run_until(clock, sched, 80)
    sched.cancel(after_ns=50 * MS)
    run_until(clock, sched, 600)
    assert rows(port) == [
        (10.0, "NOTE_ON", 60, 80),
        (60.0, "NOTE_ON", 64, 80),
        (80.0, "NOTE_OFF", 64, 0),
        (500.0, "NOTE_OFF", 60, 0),
    ]


def test_cancel_releases_pedal_left_down(rig):
    clock, port, sched = rig
    sched.schedule(control(10 * MS, 64, 127))
    sched.schedule(control(200 * MS, 64, 0))
    run_until(clock, sched, 50)
    sched.cancel(after_ns=100 * MS)
    run_until(clock, sched, 300)
    assert rows(port) == [(10.0, "CONTROL", 64, 127), (100.0, "CONTROL", 64, 0)]


def test_stop_ends_in_silence(rig):
    clock, port, sched = rig
    sched.schedule_note(0, 1000 * MS, 60, 80)
    sched.schedule(control(0, 64, 127, channel=2))
    sched.schedule_note(500 * MS, 900 * MS, 62, 80)
    run_until(clock, sched, 10)
    port.take()
    sched.stop()
    out = port.take()
    assert out[0].kind is Kind.NOTE_OFF and out[0].number == 60
    assert [(e.number, e.value) for e in out[1:17]] == [(64, 0)] * 16
    tail = [(e.channel, e.number) for e in out[17:]]
    assert tail == [(ch, cc) for ch in range(16) for cc in (123, 121)]
    sched.stop()  # idempotent: nothing more
    assert port.take() == []


def test_panic_adds_all_sound_off(rig):
    clock, port, sched = rig
    sched.schedule_note(0, 1000 * MS, 60, 80)
    run_until(clock, sched, 10)
    port.take()
    sched.panic()
    out = port.take()
    assert out[0].kind is Kind.NOTE_OFF
    assert {(e.channel, e.number) for e in out if e.kind is Kind.CONTROL} == {
        (ch, cc) for ch in range(16) for cc in (64, 120, 121, 123)
    }
    run_until(clock, sched, 2000)
    assert port.take() == []  # pending off was for a note already ended


def test_raw_events_are_tracked(rig):
    clock, port, sched = rig
    sched.schedule_many([note_on(0, 60, 80), note_on(5 * MS, 60, 90), note_off(10 * MS, 60), note_off(20 * MS, 60)])
    run_until(clock, sched, 30)
    assert rows(port) == [
        (0.0, "NOTE_ON", 60, 80),
        (5.0, "NOTE_OFF", 60, 0),
        (5.0, "NOTE_ON", 60, 90),
        (10.0, "NOTE_OFF", 60, 0),
    ]


class ExplodingPort(MemoryOutputPort):
    def __init__(self, clock, fail_on_pitch: int):
        super().__init__(clock)
        self.fail_on_pitch = fail_on_pitch

    def send(self, message: bytes) -> None:
        if message[0] & 0xF0 == 0x90 and message[1] == self.fail_on_pitch:
            raise OSError("port went away")
        super().send(message)


def test_thread_error_ends_in_silence():
    clock = MonotonicClock()
    port = ExplodingPort(clock, fail_on_pitch=62)
    errors: list[BaseException] = []
    done = threading.Event()

    def on_error(exc):
        errors.append(exc)
        done.set()

    sched = OutputScheduler(port, clock, on_error=on_error)
    t0 = clock.now_ns()
    sched.schedule_note(t0 + 1 * MS, t0 + 10_000 * MS, 60, 80)
    sched.schedule_note(t0 + 5 * MS, t0 + 10_000 * MS, 62, 80)
    sched.start()
    assert done.wait(5)
    sched.stop()
    kinds = [(e.kind, e.number) for e in port.events]
    assert kinds[0] == (Kind.NOTE_ON, 60)
    assert (Kind.NOTE_OFF, 60) in kinds
    assert isinstance(errors[0], OSError)
    assert sched.sounding() == set()


def test_real_thread_plays_on_time():
    clock = MonotonicClock()
    port = MemoryOutputPort(clock)
    sched = OutputScheduler(port, clock)
    sched.start()
    t0 = clock.now_ns() + 20 * MS
    for i in range(20):
        sched.schedule_note(t0 + i * 5 * MS, t0 + i * 5 * MS + 3 * MS, 60 + i, 80)
    deadline = t0 + 200 * MS
    while clock.now_ns() < deadline and sched.stats().sent < 40:
        threading.Event().wait(0.01)
    sched.stop()
    notes = [e for e in port.events if e.kind in (Kind.NOTE_ON, Kind.NOTE_OFF)]
    assert len(notes) == 40
    assert all(e.t_ns >= t0 for e in notes)  # never early
