"""Plays a list of timed MIDI messages out through the scheduler (`jamtui play`)."""
from __future__ import annotations

import threading

from engine.clock import NS_PER_S, Clock
from engine.events import MidiEvent
from engine.midi.midifile import TimedMessage
from engine.midi.scheduler import OutputScheduler


def schedule_file(scheduler: OutputScheduler, events: list[TimedMessage], start_ns: int) -> int:
    """Schedule every message at `start_ns` + its time; returns the last deadline (ns)."""
    timed = [MidiEvent.from_bytes(start_ns + round(e.t_s * NS_PER_S), e.data) for e in events]
    scheduler.schedule_many(timed)
    return max((e.t_ns for e in timed), default=start_ns)


def play(scheduler: OutputScheduler, events: list[TimedMessage], clock: Clock, *, lead_s: float = 0.05,
         stop: threading.Event | None = None) -> bool:
    """Play `events` to the end (True) or until `stop` is set (False); the caller stops the scheduler."""
    stop = stop or threading.Event()
    end_ns = schedule_file(scheduler, events, clock.now_ns() + round(lead_s * NS_PER_S))
    while not stop.is_set():
        if scheduler.next_deadline_ns() is None and clock.now_ns() >= end_ns:
            return True
        if scheduler.error is not None:
            raise scheduler.error
        stop.wait(0.02)
    return False
