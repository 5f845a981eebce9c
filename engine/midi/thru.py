"""MIDI thru: performer input forwarded through the scheduler to an output, optionally recorded.

The smallest complete path through the engine (capture -> scheduler -> port, with the
recorder and port watcher); the duet session builds on the same parts.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from engine.clock import Clock, MonotonicClock
from engine.events import MidiEvent
from engine.midi.base import InputPort, OutputPort
from engine.midi.capture import Capture, CaptureStats
from engine.midi.scheduler import OutputScheduler, SchedulerStats
from engine.midi.watch import PortWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThruStats:
    capture: CaptureStats
    scheduler: SchedulerStats


class Thru:
    """Owns capture, scheduler and port watcher threads; `stop` (from any thread) ends in silence."""

    def __init__(self, source: InputPort, sink: OutputPort, *, clock: Clock | None = None, recorder=None) -> None:
        self.clock = clock or MonotonicClock()
        self.capture = Capture(source, clock=self.clock)
        self.scheduler = OutputScheduler(sink, self.clock, on_error=self._on_error)
        self.watcher = PortWatcher([source, sink])
        self.recorder = recorder
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        self.scheduler.start()
        self.watcher.start()
        self.capture.start(self._forward, on_error=self._on_error)

    def _forward(self, event: MidiEvent) -> None:
        # Due at its arrival time: the scheduler sends it at once and tracks the note.
        self.scheduler.schedule(event)
        if self.recorder is not None:
            self.recorder.record("performer", event)

    def _on_error(self, exc: BaseException) -> None:
        self.error = exc
        threading.Thread(target=self.stop, name="jamtui-stop", daemon=True).start()

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.capture.stop()
        self.watcher.stop()
        self.scheduler.stop()
        self.capture.port.close()

    def stats(self) -> ThruStats:
        return ThruStats(self.capture.stats(), self.scheduler.stats())
