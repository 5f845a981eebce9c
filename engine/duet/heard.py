"""What was heard of a jam lately, for a face to draw and read from any thread: both players'
notes as they sounded (`HeardNotes`, which also passes what was heard on to the recorder) and
`RecentNotes`, a snapshot of them with the AI's written-ahead notes and the performer's
chord, key and tempo."""
from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.duet.listening import TEMPO_WINDOW_S, Listening, listen_to_notes
from engine.events import (
    AI,
    ALL_NOTES_OFF_CC,
    ALL_SOUND_OFF_CC,
    PERFORMER,
    Kind,
    MidiEvent,
    Note,
)
from engine.tokens.keys import Key, find_key

KEPT_S = 30.0  # notes that ended longer ago are forgotten ...
KEPT_NOTES = 2048  # ... and never more than this many per player (a bounded window over a long jam)
KEY_WINDOW_S = 8.0  # the performer's key: from his last this-many seconds (as the AI's guide reads it)
LISTEN_WINDOW_S = max(KEY_WINDOW_S, TEMPO_WINDOW_S)  # his chord, key and tempo: from this long ...
LISTEN_NOTES = 64  # ... from at most his last this-many notes: the tempo estimate's cost grows with their square


@dataclass(frozen=True)
class RecentNotes:
    """Both players around `now_s` (session seconds). `performer` and `ai_sounded` are notes that
    sounded (keys still down and AI notes still sounding end at `now_s`); `ai_ahead` are the
    AI's notes written ahead of the clock, scheduled and not sounded yet. `listening` and `key`
    are what the jam hears of the performer."""

    now_s: float
    performer: tuple[Note, ...] = ()
    ai_sounded: tuple[Note, ...] = ()
    ai_ahead: tuple[Note, ...] = ()
    ai_muted: bool = False
    listening: Listening | None = None
    key: Key | None = None


class _Track:
    """One player's notes: keys down and finished notes, bounded. Under its owner's lock."""

    def __init__(self, player: int) -> None:
        self.player = player
        self.down: dict[int, tuple[float, int]] = {}  # pitch -> (start_s, velocity)
        self.finished: collections.deque[Note] = collections.deque(maxlen=KEPT_NOTES)

    def on(self, t_s: float, pitch: int, velocity: int) -> None:
        self.off(t_s, pitch)  # a re-strike ends the last sound of that key
        self.down[pitch] = (t_s, velocity)

    def off(self, t_s: float, pitch: int) -> None:
        started = self.down.pop(pitch, None)
        if started is not None:
            self.finished.append(Note(started[0], max(t_s, started[0] + 0.005), pitch, started[1], self.player))
        while self.finished and self.finished[0].end_s < t_s - KEPT_S:
            self.finished.popleft()

    def all_off(self, t_s: float) -> None:
        for pitch in list(self.down):
            self.off(t_s, pitch)

    def since(self, since_s: float, now_s: float) -> tuple[Note, ...]:
        done = [n for n in self.finished if n.end_s > since_s]
        held = [Note(s, max(now_s, s + 0.005), p, v, self.player) for p, (s, v) in self.down.items()]
        return tuple(sorted(done + held, key=lambda n: (n.start_s, n.pitch)))


class HeardNotes:
    """Follows both players from the events a session records: it is the session's recorder,
    passing on to the real one (`recorder`, None while not recording) what was heard. The
    performer's events come from the session's control thread, the AI's from its output
    thread right after each send (`ai_heard()` says whether that send sounded: see
    `MutableOutput.heard_last`); `recent` is safe from any thread. Times are session seconds:
    clock ns from `origin_ns()` (the session's start)."""

    def __init__(self, ai_heard: Callable[[], bool] = lambda: True, origin_ns: Callable[[], int] = lambda: 0) -> None:
        self.recorder = None
        self._ai_heard = ai_heard
        self._origin_ns = origin_ns
        self._lock = threading.Lock()
        self._performer, self._ai = _Track(PERFORMER), _Track(AI)

    def record(self, player: str, event: MidiEvent) -> None:
        """The recorder protocol (`SessionRecorder.record`)."""
        if player == "ai" and not self._ai_heard():
            return  # muted: it did not sound, so it is neither drawn nor recorded
        self._follow(player, event, (event.t_ns - self._origin_ns()) / 1e9)
        recorder = self.recorder
        if recorder is not None:
            recorder.record(player, event)

    def recent(self, since_s: float, now_s: float, ai_ahead: Sequence[Note] = (), *, ai_muted: bool = False,
               listen: bool = True) -> RecentNotes:
        """Both players' notes sounding after `since_s`, as of `now_s`, with `ai_ahead` (the AI's
        part as written) cut to what starts after now; `listen`: with chord, tempo and key (a
        few ms for a dense performer: the tempo estimate. The notes are copied under the lock,
        the listening done outside it, so the session's threads never wait for it)."""
        with self._lock:
            performer = self._performer.since(min(since_s, now_s - LISTEN_WINDOW_S) if listen else since_s, now_s)
            ai = self._ai.since(since_s, now_s)
        ahead = () if ai_muted else tuple(n for n in ai_ahead if n.start_s > now_s)
        listening = key = None
        if listen:
            latest = performer[-LISTEN_NOTES:]
            listening = listen_to_notes(latest, now_s)
            recent = [n for n in latest if n.end_s > now_s - KEY_WINDOW_S]
            if recent:
                key = find_key([n.pitch for n in recent], [min(n.end_s, now_s) - n.start_s for n in recent])
            performer = tuple(n for n in performer if n.end_s > since_s)
        return RecentNotes(now_s, performer, ai, ahead, ai_muted, listening, key)

    def _follow(self, player: str, event: MidiEvent, t_s: float) -> None:
        track = self._performer if player == "performer" else self._ai  # the recorder's names
        with self._lock:
            if event.is_note_on:
                track.on(t_s, event.number, event.value)
            elif event.is_note_off:
                track.off(t_s, event.number)
            elif event.kind is Kind.CONTROL and event.number in (ALL_NOTES_OFF_CC, ALL_SOUND_OFF_CC):
                track.all_off(t_s)
