"""What the session tests share: a session on a FakeClock over memory ports, stepping it, a
phrase played into it, and the note-ons that came out."""
from __future__ import annotations

from engine.clock import FakeClock, s_to_ns
from engine.events import MidiEvent
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.presets.schema import Preset
from engine.duet.session import Session


def make(tokenizer, model, mode: str, **preset_kw):
    """A session started (not live) at 100 s on a FakeClock: (clock, input, output, session,
    the events it emitted)."""
    clock = FakeClock(start_ns=s_to_ns(100.0))
    inp, out = MemoryInputPort(), MemoryOutputPort(clock)
    preset = Preset(mode=mode, **preset_kw)
    seen = []
    session = Session(inp, out, model, tokenizer, preset, clock=clock, seed=1, on_event=seen.append)
    session.start(live=False)
    return clock, inp, out, session, seen


def advance(session: Session, clock: FakeClock, until_s: float, step_s: float = 0.01) -> None:
    """Tick the session every `step_s` until `until_s` session seconds."""
    target = session.start_ns + s_to_ns(until_s)
    while clock.now_ns() < target:
        clock.set(min(clock.now_ns() + s_to_ns(step_s), target))
        session.tick(clock.now_ns())


def phrase(port: MemoryInputPort, clock: FakeClock, session: Session, start_s: float, pitches, step_s=0.25):
    """Play a short legato line from start_s, ticking the session on the way."""
    for i, pitch in enumerate(pitches):
        t_on = start_s + i * step_s
        advance(session, clock, t_on)
        port.feed(bytes((0x90, pitch, 90)), clock.now_ns())
        advance(session, clock, t_on + step_s * 0.9)
        port.feed(bytes((0x80, pitch, 0)), clock.now_ns())


def note_ons(events: list[MidiEvent]) -> list[MidiEvent]:
    return [e for e in events if e.is_note_on]
