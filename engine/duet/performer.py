"""The performer's side of a session: keys held, notes played, the current call (phrase),
the hand-over signal, and the listener that follows them. Control thread only."""
from __future__ import annotations

import enum

from engine.events import PERFORMER, SUSTAIN_CC, Kind, MidiEvent, Note
from engine.duet.listening import Listener
from engine.presets.schema import HandoverKind

MEMORY_S = 30.0  # notes kept for the context (the longest context_s)


class Took(enum.Enum):
    """What an event was to the track, when it was something to act on."""

    KEY_DOWN = "key down"  # a played key (the hand-over key is not one)
    NOTE_ENDED = "note ended"  # a key went up: a finished note


class PerformerTrack:
    def __init__(self) -> None:
        self.listener = Listener()
        self.held: dict[int, tuple[float, int]] = {}  # pitch -> (start_s, velocity)
        self.notes: list[Note] = []  # finished notes of the last MEMORY_S
        self.phrase: list[Note] = []  # the current call
        self.handover = False
        self.notes_in = 0

    def take(self, event: MidiEvent, t_s: float, handover, *, keep_phrase: bool) -> Took | None:
        """Follow one event at session time t_s; returns what it was (`Took`), None when
        nothing to act on. `keep_phrase`: calls are answered (call-and-response),
        so the phrase grows until the answer; else only its latest notes are kept."""
        if event.is_note_on:
            if handover is not None and handover.kind == HandoverKind.NOTE and event.number == handover.number:
                self.handover = True
                return None
            self.notes_in += 1
            self.listener.note_on(t_s, event.number, event.value)
            self.held[event.number] = (t_s, event.value)
            return Took.KEY_DOWN
        if event.is_note_off:
            self.listener.note_off(t_s, event.number)
            started = self.held.pop(event.number, None)
            if started is None:
                return None
            note = Note(started[0], max(t_s, started[0] + 0.005), event.number, started[1], PERFORMER)
            self.notes.append(note)
            self.phrase.append(note)
            if not keep_phrase and len(self.phrase) > 64:
                self.phrase = self.phrase[-32:]  # no calls to answer: only the latest idea matters
            horizon = t_s - MEMORY_S
            if self.notes[0].end_s < horizon:
                self.notes = [n for n in self.notes if n.end_s >= horizon]
            return Took.NOTE_ENDED
        if event.kind is Kind.CONTROL:
            if event.number == SUSTAIN_CC:
                self.listener.pedal(t_s, event.value >= 64)
            if handover is not None and handover.kind == HandoverKind.CC and event.number == handover.number and event.value >= 64:
                self.handover = True
        return None

    def recent(self, since_s: float, now_s: float) -> list[Note]:
        """Notes sounding after since_s, keys still down included (ending now)."""
        out = [n for n in self.notes if n.end_s > since_s]
        return out + [Note(s, max(now_s, s + 0.005), p, v, PERFORMER) for p, (s, v) in self.held.items()]
