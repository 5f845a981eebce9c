"""In-memory ports: an output that records what it is sent, an input fed by code.

Used by `simulate`, the benchmark and tests; they follow the same protocol as real ports.
"""
from __future__ import annotations

import threading

from engine.clock import Clock
from engine.events import MidiEvent
from engine.midi.base import InputCallback


class MemoryOutputPort:
    """Keeps every message sent, stamped with the clock time of the send."""

    def __init__(self, clock: Clock, name: str = "memory out") -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self.events: list[MidiEvent] = []
        self.closed = False

    def send(self, message: bytes) -> None:
        event = MidiEvent.from_bytes(self._clock.now_ns(), message)
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[MidiEvent]:
        with self._lock:
            events, self.events = self.events, []
        return events


class MemoryInputPort:
    """An input whose messages come from `feed` (the caller chooses the timestamp)."""

    def __init__(self, name: str = "memory in") -> None:
        self.name = name
        self._callback: InputCallback | None = None
        self.closed = False

    def set_callback(self, callback: InputCallback | None) -> None:
        self._callback = callback

    def feed(self, message: bytes, t_ns: int) -> None:
        if self._callback is not None:
            self._callback(message, t_ns)

    def close(self) -> None:
        self._callback = None
        self.closed = True
