"""What the UI tests share: in-memory ports handed to JamApp, waiting on Pilot, and checks on the output."""
from __future__ import annotations

import asyncio
import functools
import time

from textual.widgets import OptionList

from engine.events import ALL_NOTES_OFF_CC, RESET_CONTROLLERS_CC, Kind, MidiEvent
from engine.midi.memory import MemoryInputPort, MemoryOutputPort
from engine.midi.system import PortList
from jamtui.app import JamApp
from jamtui.screens.jam import RUNNING
from jamtui.widgets.eventlog import EventLog
from jamtui.widgets.meters import Meters
from jamtui.widgets.status import JamStatus
from tests.midi_checks import assert_balanced

PORTS = PortList("fake", ["Stage Piano"], ["Synth"])
PHRASE = [60, 64, 67, 72, 67, 64, 60, 64]


class ClosableInputPort(MemoryInputPort):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class Rig:
    """A port opener over memory ports that keeps what it built for the test to look at."""

    def __init__(self, sink_cls=MemoryOutputPort) -> None:
        self.sink_cls = sink_cls
        self.specs: list[tuple[str, str]] = []
        self.clock = None
        self.source: ClosableInputPort | None = None
        self.sink: MemoryOutputPort | None = None

    def open(self, input_spec: str, output_spec: str, clock):
        self.specs.append((input_spec, output_spec))
        self.clock = clock
        self.source = ClosableInputPort()
        self.sink = self.sink_cls(clock)
        return self.source, self.sink

    def play(self, message: tuple[int, ...]) -> None:
        self.source.feed(bytes(message), self.clock.now_ns())

    def note_ons(self) -> list[MidiEvent]:
        return [e for e in self.sink.events if e.is_note_on]

    def controls(self, number: int) -> list[int]:
        return [e.channel for e in self.sink.events if e.kind is Kind.CONTROL and e.number == number]


def async_test(fn):
    # Runs the async body in its own loop, so the tests need no asyncio plugin.
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(fn(*args, **kwargs))

    return wrapper


async def wait_for(pilot, predicate, timeout_s: float = 20.0) -> None:
    # The session's threads run on the real clock, so the UI side can only poll for their result.
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__doc__ or predicate}")
        await pilot.pause(0.02)


def make_app(rig: Rig, tmp_path, model=None, ports_provider=lambda: PORTS, **kwargs) -> JamApp:
    """`model`: the (model, tokenizer) every preset plays (None: a stand-in that cannot play)."""
    return JamApp(port_opener=rig.open, ports_provider=ports_provider,
                  model_loader=lambda path: model or (None, None),
                  recordings_dir=tmp_path / "recordings", user_presets_dir=tmp_path / "presets", **kwargs)


async def ports_listed(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.query_one("#inputs", OptionList).option_count > 0)


async def start(app: JamApp, pilot) -> None:
    await ports_listed(pilot)
    await pilot.press("space")
    await wait_for(pilot, lambda: app.screen.state == RUNNING)


async def play_phrase(rig: Rig, pilot, pitches=PHRASE, step_s: float = 0.1) -> None:
    """A short legato line, in real time."""
    for pitch in pitches:
        rig.play((0x90, pitch, 90))
        await pilot.pause(step_s * 0.9)
        rig.play((0x80, pitch, 0))
        await pilot.pause(step_s * 0.1)


def status_text(app: JamApp) -> str:
    return app.screen.query_one(JamStatus).render().plain


def meters_text(app: JamApp) -> str:
    return app.screen.query_one(Meters).render().plain


def log_text(app: JamApp) -> str:
    # Wrapping splits long paths over lines; joining them back makes the text searchable.
    lines = [line.text.rstrip() for line in app.screen.query_one(EventLog).lines]
    return " ".join(lines) + "\n" + "".join(lines)


def metrics(app: JamApp):
    return app.screen.query_one(Meters).metrics


def assert_ends_in_silence(rig: Rig) -> None:
    assert_balanced(rig.sink.events)
    tail = [(e.channel, e.number) for e in rig.sink.events[-32:]]
    assert tail == [(ch, cc) for ch in range(16) for cc in (ALL_NOTES_OFF_CC, RESET_CONTROLLERS_CC)]
    assert rig.sink.closed and rig.source.closed
