"""What happens to the model's notes before they sound: the preset's register, velocity and
polyphony limits, a turn's end, and no re-strike that blending or the register made. A pure function."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from engine.events import AI, Note
from engine.duet.guide import RESTRIKE_GAP_S
from engine.duet.injection import keep_register


def within_limits(notes: Sequence[Note], limits, recent_ai: Sequence[Note], *, turn_end_s: float | None = None,
                  ring_s: float = 0.5) -> list[Note]:
    """The notes inside the preset's register, velocity and polyphony limits, as the AI's;
    in a turn, none starts after its end and none rings more than `ring_s` past it. A note
    that lands on a pitch the AI still holds or released less than RESTRIKE_GAP_S before
    (the model was kept from that, but blending and the register move pitches) is left out."""
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
        earlier = [*recent_ai[-64:], *out]
        sounding = [m for m in earlier if m.start_s <= n.start_s < m.end_s]
        if len(sounding) >= limits.max_polyphony:
            continue
        if any(m.pitch == pitch and m.start_s <= n.start_s < m.end_s + RESTRIKE_GAP_S for m in earlier):
            continue
        out.append(replace(n, pitch=pitch, velocity=velocity, player=AI))
    return out

