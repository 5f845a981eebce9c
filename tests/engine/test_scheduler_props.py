"""Property tests: for any event stream, cancels and stop point, the output is balanced."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import FakeClock
from engine.events import Kind, control, note_off, note_on
from engine.midi.memory import MemoryOutputPort
from engine.midi.scheduler import OutputScheduler
from tests.midi_checks import assert_balanced

MS = 1_000_000

whole_note = st.tuples(
    st.just("note"),
    st.integers(0, 400),  # onset ms
    st.integers(1, 300),  # duration ms
    st.integers(58, 62),  # few pitches, so re-strikes are common
    st.integers(0, 1),  # channel
)
raw_event = st.tuples(
    st.sampled_from(["on", "off", "pedal"]),
    st.integers(0, 600),
    st.integers(0, 127),
    st.integers(58, 62),
    st.integers(0, 1),
)
action = st.one_of(
    st.tuples(st.just("cancel"), st.integers(0, 700)),
    st.tuples(st.just("panic"), st.integers(0, 700)),
)


@settings(max_examples=300, deadline=None)
@given(
    notes=st.lists(whole_note, max_size=25),
    raws=st.lists(raw_event, max_size=25),
    actions=st.lists(action, max_size=4),
    steps=st.lists(st.integers(0, 800), min_size=1, max_size=30),
    stop_ms=st.integers(0, 900),
    late_ms=st.integers(0, 50),
)
def test_output_always_balanced(notes, raws, actions, steps, stop_ms, late_ms):
    clock = FakeClock()
    port = MemoryOutputPort(clock)
    sched = OutputScheduler(port, clock, late_drop_ms=late_ms)
    for _, on_ms, dur_ms, pitch, ch in notes:
        sched.schedule_note(on_ms * MS, (on_ms + dur_ms) * MS, pitch, 80, ch)
    for kind, t_ms, value, pitch, ch in raws:
        if kind == "on":
            sched.schedule(note_on(t_ms * MS, pitch, max(1, value), ch))
        elif kind == "off":
            sched.schedule(note_off(t_ms * MS, pitch, ch))
        else:
            sched.schedule(control(t_ms * MS, 64, value, ch))
    timeline = sorted([(t, "step", None) for t in steps] + [(t, kind, None) for kind, t in actions])
    for t_ms, kind, _ in timeline:
        if t_ms >= stop_ms:
            break
        clock.set(max(clock.now_ns(), t_ms * MS))
        if kind == "step":
            sched.step()
        elif kind == "cancel":
            sched.cancel(after_ns=t_ms * MS)
        else:
            sched.panic()
    clock.set(max(clock.now_ns(), stop_ms * MS))
    sched.stop()
    assert_balanced(port.events)
    assert sched.sounding() == set()


@settings(max_examples=200, deadline=None)
@given(notes=st.lists(whole_note, min_size=1, max_size=30), cut_ms=st.integers(0, 700))
def test_cancel_then_run_to_end_plays_exactly_committed_notes(notes, cut_ms):
    """Without stop, every note starting at or before the cut plays and ends; none after."""
    clock = FakeClock()
    port = MemoryOutputPort(clock)
    sched = OutputScheduler(port, clock, late_drop_ms=1000)
    for _, on_ms, dur_ms, pitch, ch in notes:
        sched.schedule_note(on_ms * MS, (on_ms + dur_ms) * MS, pitch, 80, ch)
    sched.cancel(after_ns=cut_ms * MS)
    while (nxt := sched.next_deadline_ns()) is not None:
        clock.set(max(clock.now_ns(), nxt))
        sched.step()
    onsets = [e for e in port.events if e.kind is Kind.NOTE_ON]
    assert all(e.t_ns <= cut_ms * MS for e in onsets)
    assert len(onsets) == sum(1 for n in notes if n[1] <= cut_ms)
    assert_balanced(port.events)
