"""What the fault tests share: a memory output that can vanish, a session simulated on a
FakeClock around it, and the clean end (every note ended, silence last) a faulted jam must reach."""
from __future__ import annotations

from engine.clock import FakeClock, s_to_ns
from engine.midi.base import PortError
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.midi.midifile import TimedMessage
from engine.midi.file_input import FilePlayerPort
from engine.presets.schema import Preset
from engine.duet.session import Session
from tests.jack_clients import describe, ends_in_silence, unbalanced


class OutputMessages(MemoryOutputPort):
    """A memory output that can vanish: while `gone`, send raises PortError as a real port
    that lost its device does; it keeps only what was delivered, as raw tuples."""

    def __init__(self, clock) -> None:
        super().__init__(clock, name="flaky out")
        self.gone = False
        self.failed = 0

    def send(self, message: bytes) -> None:
        if self.gone:
            self.failed += 1
            raise PortError("MIDI output port 'flaky out' is disconnected")
        super().send(message)

    def messages(self) -> list[tuple[int, ...]]:
        return [tuple(e.to_bytes()) for e in self.events]


def simulated(model, tokenizer, performer: list[TimedMessage], *, mode="call-and-response", seed=1, **preset_kw):
    clock = FakeClock(start_ns=s_to_ns(50.0))
    player = FilePlayerPort(performer, clock) if performer else None
    out = OutputMessages(clock)
    seen = []
    session = Session(player or MemoryInputPort(), out, model, tokenizer, Preset(mode=mode, **preset_kw),
                      clock=clock, seed=seed, on_event=seen.append)
    pump = player.pump if player is not None else None
    return session, out, seen, (lambda until_s: session.run_simulated(until_s, pump=pump))


def note_ons(out: OutputMessages) -> list:
    return [e for e in out.events if e.is_note_on]


def ons_after(out: OutputMessages, session: Session, t_s: float) -> int:
    return sum(1 for e in out.events if e.is_note_on and e.t_ns > session.start_ns + s_to_ns(t_s))


def assert_clean_end(session: Session, out: OutputMessages) -> None:
    session.stop()
    assert not session.scheduler.sounding()
    messages = out.messages()
    assert unbalanced(messages) == [], describe(messages)
    assert ends_in_silence(messages), describe(messages)
