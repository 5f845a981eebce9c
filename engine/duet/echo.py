"""The echo measure: how often the AI's phrases copy the performer's latest, counted per
turn (call-and-response) or over 2 s windows of its playing (accompany, continuous)."""
from __future__ import annotations

from typing import Sequence

from engine.events import Note
from engine.duet.injection import is_echo

ECHO_PHRASE_S, ECHO_CALL_S = 2.0, 4.0  # accompany/continuous: AI phrases of 2 s vs the performer's last 4 s


class EchoMeter:
    """Counts the AI's phrases that echo the performer's latest. One owner thread."""

    def __init__(self, threshold: float = 0.7) -> None:
        self.threshold = threshold
        self.ai_phrases = 0
        self.echoes = 0
        self._performer: tuple[Note, ...] = ()

    def observe_performer(self, phrase: Sequence[Note]) -> None:
        self._performer = tuple(phrase)

    def observe_ai(self, phrase: Sequence[Note]) -> bool:
        echo = is_echo(phrase, self._performer, self.threshold)
        self.ai_phrases += 1
        self.echoes += int(echo)
        return echo

    @property
    def echo_rate(self) -> float:
        return self.echoes / self.ai_phrases if self.ai_phrases else 0.0


class EchoWindows:
    """Without turns, the AI's phrases are its 2 s stretches, each compared with what the
    performer played in the 4 s before it (when they played a phrase, 3 notes or more)."""

    def __init__(self, meter: EchoMeter) -> None:
        self.meter = meter
        self._window: list[Note] = []

    def add(self, ai_notes: Sequence[Note], performer_notes: Sequence[Note]) -> None:
        self._window += ai_notes
        if not self._window or self._window[-1].start_s - self._window[0].start_s < ECHO_PHRASE_S:
            return
        start_s = self._window[0].start_s
        call = [n for n in performer_notes if start_s - ECHO_CALL_S <= n.start_s < start_s]
        if len(call) >= 3:
            self.meter.observe_performer(call)
            self.meter.observe_ai(self._window)
        self._window = []
