"""What a balanced MIDI output is, for every test that checks one: each note-on ended by its own
note-off before the key sounds again, no note-off for a silent key, the sustain pedal up at the
end. One check over engine events; the MIDI-file form converts to it."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.events import SUSTAIN_CC, Kind, MidiEvent

if TYPE_CHECKING:
    import mido


def unbalanced(events: Iterable[MidiEvent]) -> list[str]:
    """The problems, strictly by (channel, key): a note-on while that key sounds, a note-off of
    a key not sounding, keys left sounding and pedals left down at the end. An all-notes-off
    or a controller reset ends nothing: every note-on needs its own note-off."""
    problems = []
    sounding: set[tuple[int, int]] = set()
    pedal_down: set[int] = set()
    for i, e in enumerate(events):
        key = (e.channel, e.number)
        if e.is_note_on:
            if key in sounding:
                problems.append(f"#{i}: note-on {key} while it sounds")
            sounding.add(key)
        elif e.is_note_off:
            if key not in sounding:
                problems.append(f"#{i}: note-off {key} of no sounding note")
            sounding.discard(key)
        elif e.kind is Kind.CONTROL and e.number == SUSTAIN_CC:
            (pedal_down.add if e.value >= 64 else pedal_down.discard)(e.channel)
    problems += [f"left sounding: {key}" for key in sorted(sounding)]
    problems += [f"pedal left down on channel {channel}" for channel in sorted(pedal_down)]
    return problems


def assert_balanced(events: Iterable[MidiEvent]) -> None:
    """Engine events (what a memory port took, what a session sent) are balanced."""
    problems = unbalanced(events)
    assert not problems, "unbalanced output: " + "; ".join(problems[:20])


def assert_track_balanced(track: Iterable[tuple[int, mido.Message]]) -> None:
    """A MIDI-file track as (absolute tick, message) pairs is balanced."""
    assert_balanced(MidiEvent.from_bytes(tick, msg.bytes()) for tick, msg in track)
