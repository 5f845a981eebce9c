"""The performer's pulse, where he keeps one: a grid of steps (his beat split in two) anchored at
his last attack, told only when his recent attacks keep to it (so rubato, rolled runs and
passages finer than the grid leave it untold). Listening, the guide and the review share it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from engine.tokens.conditions import estimate_tempo_bpm

ATTACK_SPREAD_S = 0.03  # onsets this close together are one attack (a chord)
STEPS_PER_BEAT = 2  # the grid: his beat split in two
NEAR = 0.125  # an onset within this share of a step of a grid point is on it (random onsets: 0.25)
CLEAR = 0.6  # his pulse is told when at least this share of his intervals are whole steps (one or more) ...
MIN_ATTACKS = 5  # ... over at least this many attacks


@dataclass(frozen=True)
class PulseGrid:
    step_s: float
    anchor_s: float  # his last attack: grid points are anchor_s + k * step_s

    def offset(self, t_s: float) -> float:
        """How far `t_s` is from the nearest grid point, as a share of a step (0 to 0.5)."""
        phase = ((t_s - self.anchor_s) / self.step_s) % 1.0
        return min(phase, 1.0 - phase)

    def on_grid(self, t_s: float, near: float = NEAR) -> bool:
        return self.offset(t_s) <= near


def attack_times(onsets_s: Sequence[float]) -> list[float]:
    """Sorted onsets with each chord (onsets within ATTACK_SPREAD_S of its first) kept once."""
    out: list[float] = []
    for t in sorted(onsets_s):
        if not out or t - out[-1] >= ATTACK_SPREAD_S:
            out.append(t)
    return out


def pulse_grid(onsets_s: Sequence[float], tempo_bpm: float | None = None) -> PulseGrid | None:
    """His grid from his recent onsets (give the last few seconds), or None when he keeps no
    pulse it can follow: too few attacks, no beat found, or too few of the intervals between
    his attacks whole steps of it. `tempo_bpm` given (a preset's, a tapped one) fixes the beat."""
    attacks = attack_times(onsets_s)
    if len(attacks) < MIN_ATTACKS:
        return None
    bpm = tempo_bpm if tempo_bpm else estimate_tempo_bpm(attacks)
    if not bpm:
        return None
    step_s = 60.0 / bpm / STEPS_PER_BEAT
    grid = PulseGrid(step_s, attacks[-1])
    whole = sum(b - a > step_s / 2 and PulseGrid(step_s, a).on_grid(b) for a, b in zip(attacks, attacks[1:]))
    return grid if whole >= CLEAR * (len(attacks) - 1) else None
