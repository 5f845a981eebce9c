"""The MIDI-file player as an input port: exact virtual times, loops, silence on close and on errors."""
from __future__ import annotations

import threading
import time

import pytest

from engine.clock import FakeClock, MonotonicClock, s_to_ns
from engine.midi.midifile import MidiFileError, TimedMessage, load_midi_events
from engine.midi.file_input import FilePlayerPort
from tests import midi_fixtures as fx

T0_NS = 5_000_000_000  # a clock that does not start at 0 catches times taken as relative


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def __call__(self, data: bytes, t_ns: int) -> None:
        with self.lock:
            self.calls.append((t_ns, data.hex(" ")))


def expected(events: list[TimedMessage], start_ns: int = T0_NS) -> list[tuple[int, str]]:
    return [(start_ns + s_to_ns(e.t_s), e.data.hex(" ")) for e in events]


def make(events, **kw):
    clock = FakeClock(T0_NS)
    player = FilePlayerPort(events, clock, **kw)
    rec = Recorder()
    player.set_callback(rec)
    return clock, player, rec


def test_start_and_wait_on_a_fake_clock_plays_every_event_at_its_exact_time(tmp_path):
    events = load_midi_events(fx.write_chords_with_pedal(tmp_path))
    clock, player, rec = make(events)
    player.start()
    assert player.wait(timeout=10)
    assert player.done and player.error is None
    assert rec.calls == expected(events)
    assert clock.now_ns() == T0_NS + s_to_ns(2.0)
    player.close()
    assert rec.calls == expected(events)  # nothing was held, so close adds nothing


def test_the_first_pump_fixes_the_start(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=2))
    _, player, rec = make(events)
    player.pump(T0_NS + s_to_ns(7))
    player.pump(T0_NS + s_to_ns(8))
    assert rec.calls == expected(events, T0_NS + s_to_ns(7))


def test_pump_delivers_what_is_due_stamped_with_its_due_time(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=3))
    _, player, rec = make(events)
    assert player.pump(T0_NS) == 1  # the first pump fixes the start
    assert player.pump(T0_NS + s_to_ns(0.1)) == 0
    assert player.pump(T0_NS + s_to_ns(0.25)) == 2
    assert not player.done
    assert player.pump(T0_NS + s_to_ns(10)) == 3
    assert player.done and player.wait(0)
    assert rec.calls == expected(events)
    assert player.pump(T0_NS + s_to_ns(20)) == 0


def test_two_tracks_and_tempo_change_through_pump(tmp_path):
    events = load_midi_events(fx.write_two_tracks(tmp_path))
    _, player, rec = make(events)
    for step in range(0, 13):
        player.pump(T0_NS + step * s_to_ns(0.25))
    assert rec.calls == expected(events)
    assert [t for t, _ in rec.calls][-1] == T0_NS + s_to_ns(3.0)


def test_start_delay_shifts_everything(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=2))
    _, player, rec = make(events, start_delay_s=1.5)
    assert player.pump(T0_NS) == 0
    assert player.pump(T0_NS + s_to_ns(1.5)) == 1
    player.pump(T0_NS + s_to_ns(100))
    assert rec.calls == expected(events, T0_NS + s_to_ns(1.5))


def test_loop_repeats_after_duration_plus_gap(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=2))  # 0.0 .. 0.5 s
    _, player, rec = make(events, loop=True, loop_gap_s=0.5)
    period_ns = s_to_ns(1.0)
    player.pump(T0_NS)
    player.pump(T0_NS + 2 * period_ns + s_to_ns(0.25))
    assert rec.calls == (
        expected(events) + expected(events, T0_NS + period_ns) + expected(events, T0_NS + 2 * period_ns)[:3]
    )
    assert not player.done
    player.close()
    assert player.done
    assert rec.calls[-1] == (T0_NS, "80 3e 00")  # the note held at close, stamped with clock time


def test_loop_on_a_thread_until_closed_from_the_callback(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=2))
    clock = FakeClock(T0_NS)
    player = FilePlayerPort(events, clock, loop=True)
    rec = Recorder()
    n_wanted = 2 * len(events) + 1  # two whole passes and the first note of the third

    def callback(data, t_ns):
        rec(data, t_ns)
        if len(rec.calls) == n_wanted:
            player.close()

    player.set_callback(callback)
    player.start()
    assert player.wait(timeout=10)
    period_ns = s_to_ns(0.5 + 0.5)
    third_start_ns = T0_NS + 2 * period_ns
    third_pass = [(third_start_ns, "90 3c 50"), (third_start_ns, "80 3c 00")]  # played, then released
    assert rec.calls == expected(events) + expected(events, T0_NS + period_ns) + third_pass


def test_close_midway_releases_notes_and_pedal(tmp_path):
    events = load_midi_events(fx.write_chords_with_pedal(tmp_path))
    clock, player, rec = make(events)
    player.pump(T0_NS)
    player.pump(T0_NS + s_to_ns(0.6))  # F chord sounding, pedal down since 0.0
    clock.set(T0_NS + s_to_ns(0.6))
    player.close()
    close_ns = T0_NS + s_to_ns(0.6)
    assert rec.calls == expected(events[:11]) + [
        (close_ns, "80 41 00"),
        (close_ns, "80 45 00"),
        (close_ns, "80 48 00"),
        (close_ns, "b0 40 00"),
    ]
    assert player.done and player.pump(T0_NS + s_to_ns(10)) == 0
    player.close()  # idempotent
    assert len(rec.calls) == 15


def test_close_after_pedal_up_releases_only_notes(tmp_path):
    events = load_midi_events(fx.write_chords_with_pedal(tmp_path))
    _, player, rec = make(events)
    player.pump(T0_NS)
    player.pump(T0_NS + s_to_ns(0.8))
    player.close()
    assert rec.calls[12:] == [(T0_NS, "80 41 00"), (T0_NS, "80 45 00"), (T0_NS, "80 48 00")]


def test_close_on_the_real_clock_is_prompt_and_silences(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=2, step_s=30.0))
    player = FilePlayerPort(events, MonotonicClock())
    got_first = threading.Event()
    calls: list[str] = []

    def callback(data, t_ns):
        calls.append(data.hex(" "))
        got_first.set()

    player.set_callback(callback)
    player.start()
    assert got_first.wait(5)
    began = time.monotonic()
    player.close()
    assert time.monotonic() - began < 0.5
    assert player.done and player.wait(0)
    assert calls == ["90 3c 50", "80 3c 00"]


def test_a_file_that_leaves_a_note_on_ends_in_silence():
    events = [
        TimedMessage(0.0, bytes([0x90, 60, 100])),
        TimedMessage(0.0, bytes([0xB1, 64, 127])),
        TimedMessage(1.0, bytes([0x91, 62, 90])),
        TimedMessage(1.5, bytes([0x81, 62, 0])),
    ]
    _, player, rec = make(events)
    player.pump(T0_NS)
    player.pump(T0_NS + s_to_ns(5))
    end_ns = T0_NS + s_to_ns(1.5)
    assert rec.calls == expected(events) + [(end_ns, "80 3c 00"), (end_ns, "b1 40 00")]


def test_callback_error_on_the_thread_is_raised_by_wait(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=4))
    clock, player, rec = make(events)
    boom = RuntimeError("receiver broke")

    def callback(data, t_ns):
        rec(data, t_ns)
        if data == bytes([0x90, 62, 80]):
            raise boom

    player.set_callback(callback)
    player.start()
    with pytest.raises(RuntimeError, match="receiver broke"):
        player.wait(timeout=10)
    assert player.error is boom and player.done
    # Stopped at the failing note, which still gets its note-off.
    t_ns = T0_NS + s_to_ns(0.25)
    assert rec.calls == expected(events[:3]) + [(t_ns, "80 3e 00")]
    player.close()
    with pytest.raises(RuntimeError):
        player.wait(0)


def test_callback_error_in_pump_propagates_and_stops(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=4))
    _, player, _ = make(events)

    def callback(data, t_ns):
        raise ValueError("nope")

    player.set_callback(callback)
    with pytest.raises(ValueError, match="nope"):
        player.pump(T0_NS)
    assert isinstance(player.error, ValueError) and player.done
    assert player.pump(T0_NS + s_to_ns(2)) == 0
    with pytest.raises(ValueError):
        player.wait(0)


def test_without_a_callback_events_are_dropped_and_nothing_is_released(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=3))
    clock = FakeClock(T0_NS)
    player = FilePlayerPort(events, clock)
    assert player.pump(T0_NS) == 1
    assert player.pump(T0_NS + s_to_ns(0.3)) == 2
    rec = Recorder()
    player.set_callback(rec)
    player.close()
    assert rec.calls == []


def test_from_file_names_the_port_and_loads(tmp_path):
    clock = FakeClock(T0_NS)
    player = FilePlayerPort.from_file(fx.write_scale(tmp_path, notes=2), clock)
    assert player.name == "file: scale.mid"
    assert player.duration_s == 0.5
    assert FilePlayerPort.from_file(tmp_path / "scale.mid", clock, name="left hand").name == "left hand"
    with pytest.raises(MidiFileError, match="bad_header.mid: not a MIDI file"):
        FilePlayerPort.from_file(fx.write_bad_header(tmp_path), clock)


def test_misuse_is_refused(tmp_path):
    events = load_midi_events(fx.write_scale(tmp_path, notes=2))
    clock = FakeClock(T0_NS)
    player = FilePlayerPort(events, clock)
    player.start()
    with pytest.raises(RuntimeError):
        player.start()
    with pytest.raises(RuntimeError):
        player.pump(T0_NS)
    player.close()
    with pytest.raises(ValueError):
        FilePlayerPort([TimedMessage(0.0, bytes([0x90, 60, 1]))], clock, loop=True, loop_gap_s=0)
    with pytest.raises(ValueError):
        FilePlayerPort(events, clock, start_delay_s=-1)


def test_an_empty_player_is_done_at_once():
    player = FilePlayerPort([], FakeClock())
    assert player.done and player.wait(0)
    assert player.pump(10) == 0
    player.start()
    player.close()
