"""Following MIDI clock: the capture's beat grid, and answers placed on the beat."""
from __future__ import annotations

import pytest

from engine.clock import FakeClock, s_to_ns
from engine.midi.capture import Capture
from engine.midi.memory import MemoryInputPort
from tests.engine.sessions import advance, make, note_ons
from tests.midi_checks import assert_balanced

TICK_NS = round(0.5e9 / 24)  # 120 bpm


def test_beat_grid_counts_from_start_and_follows_the_tempo():
    clock = FakeClock()
    port = MemoryInputPort()
    capture = Capture(port, clock=clock)
    port.set_callback(capture.on_message)
    assert capture.beat_grid() is None  # no clock: free time
    t = s_to_ns(1.0)
    port.feed(bytes((0xF8,)), t - TICK_NS)  # a tick before Start does not set the phase
    port.feed(bytes((0xFA,)), t - 1000)
    for i in range(60):
        port.feed(bytes((0xF8,)), t + i * TICK_NS)
    clock.set(t + 59 * TICK_NS)
    beat_ns, period_ns = capture.beat_grid()
    assert period_ns == pytest.approx(0.5e9, rel=1e-3)
    assert beat_ns == t + 48 * TICK_NS  # ticks 0, 24, 48 are beats
    assert not capture.drain()  # clock and transport never reach the note queue
    clock.set(t + 59 * TICK_NS + s_to_ns(1.0))
    assert capture.beat_grid() is None  # the clock stopped coming: free time again


class MidiClockFeed:
    """Steps a session while feeding it MIDI clock at 120 bpm from session time 0 (Start
    first); it remembers where the clock is between calls."""

    def __init__(self, session, clock, inp) -> None:
        self.session, self.clock, self.inp = session, clock, inp
        inp.feed(bytes((0xFA,)), session.start_ns)
        self.next_tick_ns = session.start_ns

    def run(self, until_s: float, step_s: float = 0.005) -> None:
        session, clock = self.session, self.clock
        target_ns = session.start_ns + s_to_ns(until_s)
        while clock.now_ns() < target_ns:
            step_end_ns = min(clock.now_ns() + s_to_ns(step_s), target_ns)
            while self.next_tick_ns <= step_end_ns:
                self.inp.feed(bytes((0xF8,)), self.next_tick_ns)
                self.next_tick_ns += TICK_NS
            advance(session, clock, (step_end_ns - session.start_ns) / 1e9, step_s=step_s)


def test_with_midi_clock_an_answer_starts_on_the_beat(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response", phrase_gap_s=0.3)
    feed = MidiClockFeed(session, clock, inp)
    feed.run(0.3)
    for i, pitch in enumerate([60, 62, 64, 65]):  # a phrase off the beat: its end is not on one
        t_on = 0.37 + i * 0.2
        feed.run(t_on)
        inp.feed(bytes((0x90, pitch, 90)), clock.now_ns())
        feed.run(t_on + 0.15)
        inp.feed(bytes((0x80, pitch, 0)), clock.now_ns())
    feed.run(3.0)
    started = [e for e in seen if e.kind == "ai_phrase_started"]
    assert started and started[0].t_s >= 0.37 + 3 * 0.2 + 0.15 + 0.3 - 1e-6  # not before the phrase gap
    assert_on_a_beat(started[0].t_s)
    ons = note_ons(out.events)
    assert ons and abs(ons[0].t_ns - (session.start_ns + s_to_ns(started[0].t_s))) <= s_to_ns(0.005)  # one step
    session.stop()
    assert_balanced(out.events)


def test_with_midi_clock_continuous_enters_on_the_beat(tokenizer, playful):
    clock, inp, out, session, seen = make(tokenizer, playful, "call-and-response")
    feed = MidiClockFeed(session, clock, inp)
    feed.run(0.61)  # the clock is running; nobody plays
    assert not note_ons(out.events)
    session.set_mode("continuous")
    feed.run(2.0)
    ons = note_ons(out.events)
    assert ons
    assert_on_a_beat((ons[0].t_ns - session.start_ns) / 1e9)
    session.stop()
    assert_balanced(out.events)


def assert_on_a_beat(t_s: float) -> None:
    beat_s = TICK_NS * 24 / 1e9
    off_ms = abs(t_s / beat_s - round(t_s / beat_s)) * beat_s * 1000
    assert off_ms < 1.0, f"{t_s:.4f} s is {off_ms:.1f} ms off the beat"
