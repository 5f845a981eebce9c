"""What happens to the model's notes before they sound: the preset's limits, and the echo
measure of modes without turns. Pure functions and one small collector."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from engine.events import AI, Note
from engine.duet.injection import EchoMeter, keep_register

ECHO_PHRASE_S, ECHO_CALL_S = 2.0, 4.0  # accompany/continuous: AI phrases of 2 s vs the performer's last 4 s


def within_limits(notes: Sequence[Note], limits, recent_ai: Sequence[Note], *, turn_end_s: float | None = None,
                  ring_s: float = 0.5) -> list[Note]:
    """The notes inside the preset's register, velocity and polyphony limits, as the AI's;
    in a turn, none starts after its end and none rings more than `ring_s` past it."""
    if limits.high_pitch - limits.low_pitch >= 11:
        notes = keep_register(list(notes), limits.low_pitch, limits.high_pitch)
    out: list[Note] = []
    for n in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
        pitch = min(max(n.pitch, limits.low_pitch), limits.high_pitch)
        velocity = min(max(n.velocity, limits.min_velocity), limits.max_velocity)
        if turn_end_s is not None:
            if n.start_s >= turn_end_s:
                continue
            n = replace(n, end_s=min(n.end_s, turn_end_s + ring_s))
        sounding = [m for m in [*recent_ai[-64:], *out] if m.start_s <= n.start_s < m.end_s]
        if len(sounding) >= limits.max_polyphony:
            continue
        out.append(replace(n, pitch=pitch, velocity=velocity, player=AI))
    return out


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
