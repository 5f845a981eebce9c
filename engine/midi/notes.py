"""Whole notes from MIDI messages: note-ons paired with their note-offs, the sustain pedal's
down intervals, the pedal folded into note ends, and the top voice of a passage (the one home
of each)."""
from __future__ import annotations

import bisect
import collections
from typing import Iterable, Sequence

from engine.events import PERFORMER, SUSTAIN_CC, Note
from engine.midi.midifile import TimedMessage, midi_duration_s

_NOTE_OFF, _NOTE_ON, _CONTROL = 0x80, 0x90, 0xB0
CHORD_S = 0.03  # onsets this close to a chord's first onset belong to the chord (one step, one melody note)


def pair_notes(events: Iterable[TimedMessage], end_s: float, *, player: int = PERFORMER,
               min_s: float = 0.0, held_min_s: float = 0.0) -> list[Note]:
    """Notes from time-ordered note-ons and note-offs, first in first out per channel and
    pitch; a note-on of velocity 0 is a note-off, a stray note-off is ignored.

    A note lasts at least `min_s`; one never released ends at `end_s` but lasts at least
    `held_min_s`. Paired notes come in release order, then the unreleased ones."""
    sounding: dict[tuple[int, int], collections.deque[tuple[float, int]]] = collections.defaultdict(collections.deque)
    notes: list[Note] = []
    for e in events:
        status, channel = e.data[0] & 0xF0, e.data[0] & 0x0F
        if status == _NOTE_ON and e.data[2] > 0:
            sounding[channel, e.data[1]].append((e.t_s, e.data[2]))
        elif status in (_NOTE_OFF, _NOTE_ON) and sounding.get((channel, e.data[1])):
            start_s, velocity = sounding[channel, e.data[1]].popleft()
            notes.append(Note(start_s, max(e.t_s, start_s + min_s), e.data[1], velocity, player))
    for (_, pitch), held in sounding.items():
        notes += [Note(start_s, max(end_s, start_s + held_min_s), pitch, velocity, player)
                  for start_s, velocity in held]
    return notes


def sustain_intervals(events: Iterable[TimedMessage], end_s: float) -> list[tuple[float, float]]:
    """`(down_s, up_s)` of the sustain pedal (CC64 >= 64 is down) on every channel, in the
    order the events come; a pedal still down at the end comes up at `end_s`."""
    down_since: dict[int, float] = {}
    pressed: list[tuple[float, float]] = []
    for e in events:
        if e.data[0] & 0xF0 != _CONTROL or e.data[1] != SUSTAIN_CC:
            continue
        channel = e.data[0] & 0x0F
        if e.data[2] >= 64:
            down_since.setdefault(channel, e.t_s)
        elif channel in down_since:
            pressed.append((down_since.pop(channel), e.t_s))
    return pressed + [(down_s, end_s) for down_s in down_since.values()]


def fold_sustain(notes: Iterable[Note], pedals: Iterable[tuple[float, float]]) -> list[Note]:
    """Fold the sustain pedal into note ends: a key released while the pedal is down sounds
    until the pedal comes up, but never past the next onset of the same pitch (any player),
    which also resolves overlapping notes of one pitch. `pedals` are (down_s, up_s); one
    piano has one pedal, so overlapping presses (of any channel) merge. Notes keep their order."""
    notes = list(notes)
    downs: list[float] = []  # merged presses
    ups: list[float] = []
    for down, up in sorted(pedals):
        if downs and down <= ups[-1]:
            ups[-1] = max(ups[-1], up)
        elif up > down:
            downs.append(down)
            ups.append(up)
    onsets: dict[int, list[float]] = collections.defaultdict(list)
    for n in sorted(notes, key=lambda n: n.start_s):
        onsets[n.pitch].append(n.start_s)
    folded = []
    for n in notes:
        end = n.end_s
        i = bisect.bisect_right(downs, end) - 1
        if i >= 0 and end < ups[i]:
            end = ups[i]
        later = onsets[n.pitch]
        j = bisect.bisect_right(later, n.start_s)
        if j < len(later):
            end = min(end, later[j])  # a re-strike ends the ringing string
        folded.append(Note(n.start_s, max(end, n.start_s), n.pitch, n.velocity, n.player))
    return folded


def notes_from_events(events: Sequence[TimedMessage], player: int = PERFORMER) -> list[Note]:
    """Whole notes of a parsed MIDI file (all channels as one player), sustain pedal folded in,
    sorted by start then pitch. A played note lasts at least 5 ms and one the file never
    releases at least 0.25 s, so a prompt's last chord still sounds."""
    end_s = midi_duration_s(events)
    notes = pair_notes(events, end_s, player=player, min_s=0.005, held_min_s=0.25)
    return sorted(fold_sustain(notes, sustain_intervals(events, end_s)), key=lambda n: (n.start_s, n.pitch))


def top_voice(notes: Iterable[Note]) -> list[Note]:
    """The melody: the highest note of each onset, in onset order; onsets within CHORD_S of a
    chord's first onset are that chord."""
    voice: list[Note] = []
    chord_s = float("-inf")
    for n in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
        if n.start_s - chord_s < CHORD_S:
            if n.pitch > voice[-1].pitch:
                voice[-1] = n
        else:
            voice.append(n)
            chord_s = n.start_s
    return voice
