"""What the recorder tests share: a fake-clock start and a way to move it, and reading the
tracks of a written recording back as (tick, message) rows."""
from __future__ import annotations

import mido

from engine.clock import FakeClock, s_to_ns

START_NS = 5_000_000_000
TICKS_PER_S = 960  # the recorder writes 480 ticks per beat at 120 bpm


def at(clock: FakeClock, t_s: float) -> int:
    """Move the fake clock to `t_s` after the recording starts; return the time in ns."""
    clock.set(START_NS + s_to_ns(t_s))
    return clock.now_ns()


def read_track(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) for the channel messages of one track."""
    tick, out = 0, []
    for msg in track:
        tick += msg.time
        if not msg.is_meta:
            out.append((tick, msg))
    return out


def summary(events: list[tuple[int, mido.Message]]) -> list[tuple]:
    """One comparable row per message: (tick, type, channel, the message's numbers)."""
    rows = []
    for tick, msg in events:
        if msg.type in ("note_on", "note_off"):
            rows.append((tick, msg.type, msg.channel, msg.note, msg.velocity))
        elif msg.type == "control_change":
            rows.append((tick, msg.type, msg.channel, msg.control, msg.value))
        elif msg.type == "pitchwheel":
            rows.append((tick, msg.type, msg.channel, msg.pitch))
        elif msg.type == "program_change":
            rows.append((tick, msg.type, msg.channel, msg.program))
        else:
            rows.append((tick, msg.type, msg.channel, msg.value))
    return rows
