"""What the AI's next notes respect while they are sampled: no re-strike of a string it has just
released (or still holds), the density it should keep, the performer's scale and, accompanying,
a register under the melody, notes that ring, chords rather than single notes, and attacks on
the performer's pulse. A `Guide` is plain data the session fills from listening and the
preset; `Steering` applies it to one chunk as a mask on top of the note grammar."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from engine.events import AI, Note
from engine.midi.notes import CHORD_S, top_voice
from engine.presets.schema import Mode, Preset
from engine.tokens.keys import find_key
from engine.tokens.pulse import NEAR, pulse_grid
from engine.tokens.tokenizer import DURATION, PROGRAM, SHIFT, VELOCITY, JamTokenizer

RESTRIKE_GAP_S = 0.06  # a pitch the AI released is not struck again sooner (a pianist's re-strike takes longer)
DENSITY_WINDOW_S = 1.0  # onsets counted over this much of the AI's recent playing (short: no bursts)
KEY_WINDOW_S = 8.0  # the performer's key: from his last this-many seconds
MIN_ONSETS_PER_S = 1.0  # a performer's density below this still lets the AI play a line
ACCOMPANY_DENSITY = 0.8  # an accompanist plays a little less than the soloist ...
ACCOMPANY_UNDER_SHARE = 0.75  # ... and mostly under his melody (his recent median pitch) ...
ACCOMPANY_MIN_DURATION_S = 0.3  # ... with chords that ring, not clicks
ACCOMPANY_VOICING = {2: 0.3, 3: 0.5, 4: 0.2}  # ... struck as chords of this many notes (share of attacks) ...
VOICING_SPACING = 3  # ... whose notes lie at least this many semitones apart (no clusters) ...
TEMPO_WINDOW_S = 4.0  # ... and on his pulse, where he keeps one, from his attacks in the last this-many seconds
IMITATE_FROM = 0.5  # above this on the respond <-> imitate dial the AI takes up the performer's motif ...
MOTIF_NOTES = 8  # ... the melodic steps of his last this-many melody notes


@dataclass(frozen=True)
class Guide:
    restrike_gap_s: float = RESTRIKE_GAP_S
    onsets_per_s: float | None = None  # the most AI notes a second, over DENSITY_WINDOW_S; None: free
    scale: frozenset[int] | None = None  # pitch classes of the performer's key
    scale_share: float = 0.0  # share of the AI's notes held to that scale (0..1)
    ceiling: int | None = None  # pitches below this one ...
    ceiling_share: float = 0.0  # ... for this share of the AI's notes (accompany: under the melody)
    min_duration_s: float = 0.0  # no AI note shorter (accompany)
    motif: tuple[int, ...] = ()  # the performer's last melodic steps (semitones), to take up ...
    motif_since_s: float = 0.0  # ... counted from the AI's first melody note after this time ...
    motif_share: float = 0.0  # ... for this share of its melody notes (the imitate side of the dial)
    voicing: tuple[tuple[int, float], ...] = ()  # (notes per attack, share of attacks): chords, not single notes
    pulse_s: float | None = None  # an attack starts only on this grid ...
    pulse_anchor_s: float = 0.0  # ... counted from this time (the performer's last attack)


def guide_for(preset: Preset, mode: Mode, performer: Sequence[Note], now_s: float) -> Guide:
    """The guide for what the AI writes next, from the preset and the performer's notes (his
    recent playing, or in call-and-response the phrase being answered): his key's scale at
    the preset's `scale_bias`; the preset's density, else one relative to his; accompanying,
    a register under his recent median pitch."""
    recent = [n for n in performer if n.end_s > now_s - KEY_WINDOW_S and n.start_s <= now_s]
    key = find_key([n.pitch for n in recent], [max(min(n.end_s, now_s) - n.start_s, 0.0) for n in recent])
    density = preset.conditioning.density_nps
    if density is None and recent:
        span_s = max(max(n.start_s for n in recent) - min(n.start_s for n in recent), 1.0)
        density = max(len(recent) / span_s, MIN_ONSETS_PER_S)
        if mode is Mode.ACCOMPANY:
            density *= ACCOMPANY_DENSITY
    ceiling = None
    if mode is Mode.ACCOMPANY and recent:
        pitches = sorted(n.pitch for n in recent)
        ceiling = pitches[len(pitches) // 2]
    melody = top_voice(recent)[-MOTIF_NOTES:]
    motif = tuple(b.pitch - a.pitch for a, b in zip(melody, melody[1:]))
    imitate = max(0.0, (preset.injection.respond_imitate - IMITATE_FROM) / (1.0 - IMITATE_FROM))
    pulse_s, anchor_s = _pulse(preset, recent, now_s) if mode is Mode.ACCOMPANY else (None, 0.0)
    return Guide(onsets_per_s=density, scale=key.scale if key is not None else None,
                 scale_share=preset.injection.scale_bias if key is not None else 0.0,
                 ceiling=ceiling, ceiling_share=ACCOMPANY_UNDER_SHARE if ceiling is not None else 0.0,
                 min_duration_s=ACCOMPANY_MIN_DURATION_S if mode is Mode.ACCOMPANY else 0.0,
                 motif=motif, motif_since_s=melody[-1].start_s if melody else 0.0,
                 motif_share=imitate if len(motif) >= 2 else 0.0,
                 voicing=tuple(ACCOMPANY_VOICING.items()) if mode is Mode.ACCOMPANY else (),
                 pulse_s=pulse_s, pulse_anchor_s=anchor_s)


def _pulse(preset: Preset, recent: Sequence[Note], now_s: float) -> tuple[float | None, float]:
    """(grid step, anchor) for accompanying: his pulse (`engine.tokens.pulse`, at the preset's
    tempo when it sets one) from his attacks of the last TEMPO_WINDOW_S; (None, 0) while he
    keeps none the AI could follow."""
    tempo = preset.conditioning.tempo_bpm
    grid = pulse_grid([n.start_s for n in recent if n.start_s > now_s - TEMPO_WINDOW_S],
                      float(tempo) if isinstance(tempo, (int, float)) else None)
    return (grid.step_s, grid.anchor_s) if grid is not None else (None, 0.0)


class Steering:
    """One chunk's guide at work. `mask(history, now_s, played)` says which ids may come next
    beyond the grammar: `now_s` is the model's clock, `played` the AI notes sampled so far in
    the chunk. Generation thread only."""

    def __init__(self, guide: Guide, tokenizer: JamTokenizer, recent_ai: Sequence[Note],
                 generator: torch.Generator | None = None) -> None:
        self.guide = guide
        self._tok = tokenizer
        self._recent = [n for n in recent_ai if n.player == AI]
        self._generator = generator
        lo, hi = tokenizer.pitch_range
        self._pitches = range(lo, hi + 1)
        self._pitch_ids = torch.tensor([tokenizer.token_id(f"Pitch_{p}") for p in self._pitches])
        self._program_id = tokenizer.token_id(f"Program_{AI}")
        # Masks a chunk may need, built once for it (none when its guide does not ask).
        self._scale = self._pitch_mask(lambda p: p % 12 in guide.scale) if guide.scale and guide.scale_share else None
        self._low = self._pitch_mask(lambda p: p < guide.ceiling) if guide.ceiling and guide.ceiling_share else None
        self._long_enough = torch.tensor([tokenizer.kind(i) != DURATION
                                          or tokenizer.value(i) * tokenizer.tick_s >= guide.min_duration_s
                                          for i in range(tokenizer.vocab_size)]) if guide.min_duration_s > 0 else None
        # The AI's melody since the performer's motif, before this chunk (the chunk's own notes are added per step).
        self._answer = [n for n in self._recent if n.start_s > guide.motif_since_s] if guide.motif_share > 0 else []
        shifts = [i for i in range(tokenizer.vocab_size) if tokenizer.kind(i) == SHIFT]
        self._shift_ids = torch.tensor(shifts, dtype=torch.long)
        self._shift_s = torch.tensor([tokenizer.value(i) * tokenizer.tick_s for i in shifts])
        self._tolerance_s = max(NEAR * guide.pulse_s / 2, tokenizer.tick_s) if guide.pulse_s else 0.0
        self._chord_sizes: dict[float, int] = {}  # attack onset -> the notes it is to have
        self.held_back = 0  # notes the density kept from starting (a time shift came instead)

    def mask(self, history: Sequence[int], now_s: float, played: Sequence[Note]) -> torch.Tensor | None:
        """A bool mask over the vocabulary (True: may come), or None when nothing is steered now."""
        last = self._tok.kind(history[-1]) if history else None
        if last == PROGRAM:
            return self._pitch(now_s, played)
        if last == VELOCITY and self._long_enough is not None:
            return self._long_enough
        if last in (DURATION, SHIFT, None) and self._too_dense(now_s, played):
            self.held_back += 1
            keep = torch.ones(self._tok.vocab_size, dtype=torch.bool)
            keep[self._program_id] = False
            return keep
        if last == DURATION and self._chord_open(now_s, played):
            keep = torch.ones(self._tok.vocab_size, dtype=torch.bool)
            keep[self._shift_ids] = False  # the chord's next note, at the same onset
            return keep
        if last in (DURATION, SHIFT, None) and self.guide.pulse_s:
            return self._on_pulse(now_s, attacking=bool(self._attack(now_s, played)))
        return None

    def _pitch(self, now_s: float, played: Sequence[Note]) -> torch.Tensor:
        allowed = torch.ones(self._tok.vocab_size, dtype=torch.bool)
        gap_s = self.guide.restrike_gap_s
        for n in (*self._recent, *played):
            if n.player == AI and n.start_s - CHORD_S <= now_s < n.end_s + gap_s and self._tok.pitch_range[0] <= n.pitch:
                index = n.pitch - self._tok.pitch_range[0]
                if index < len(self._pitch_ids):
                    allowed[self._pitch_ids[index]] = False
        if self.guide.voicing:  # a chord's notes spaced, not a cluster
            lo = self._tok.pitch_range[0]
            for n in self._attack(now_s, played):
                for p in range(n.pitch - VOICING_SPACING + 1, n.pitch + VOICING_SPACING):
                    if 0 <= p - lo < len(self._pitch_ids):
                        allowed[self._pitch_ids[p - lo]] = False
        motif = self._motif_step(now_s, played)
        if motif is not None:
            narrowed = allowed & motif
            if bool(narrowed[self._pitch_ids].any()):
                return narrowed  # the motif's step, transposed: it already sits where the performer's did
        for share, held_to in ((self.guide.scale_share, self._scale), (self.guide.ceiling_share, self._low)):
            if held_to is not None and self._draw() < share:
                narrowed = allowed & held_to
                if bool(narrowed[self._pitch_ids].any()):  # never leave a note no pitch at all
                    allowed = narrowed
        return allowed

    def _motif_step(self, now_s: float, played: Sequence[Note]) -> torch.Tensor | None:
        """Imitating: the AI's next melody note takes the performer's next melodic step from
        its own last melody note (so his motif comes back transposed: a real transposition,
        which may leave his key; bending it into the key lost most of the motif), for the
        guide's share."""
        guide = self.guide
        if guide.motif_share <= 0 or not guide.motif or self._draw() >= guide.motif_share:
            return None
        melody = top_voice([*self._answer, *(n for n in played if n.player == AI and n.start_s > guide.motif_since_s)])
        if not melody or now_s - melody[-1].start_s < CHORD_S:
            return None  # its first melody note is its own; a chord's lower notes are free
        target = melody[-1].pitch + guide.motif[(len(melody) - 1) % len(guide.motif)]
        lo, hi = self._tok.pitch_range
        if not lo <= target <= hi:
            return None
        mask = torch.zeros(self._tok.vocab_size, dtype=torch.bool)
        mask[self._pitch_ids[target - lo]] = True
        return mask

    def _attack(self, now_s: float, played: Sequence[Note]) -> list[Note]:
        """The AI's notes struck at `now_s` (within a chord's spread either way: the model's clock
        runs on its tick grid, a note's onset on the session's)."""
        return [n for n in (*self._recent, *played) if n.player == AI and abs(now_s - n.start_s) < CHORD_S]

    def _chord_open(self, now_s: float, played: Sequence[Note]) -> bool:
        """Whether the attack at `now_s` still wants notes: its size is drawn once, at its first note."""
        if not self.guide.voicing:
            return False
        attack = self._attack(now_s, played)
        if not attack:
            return False
        onset_s = min(n.start_s for n in attack)
        if onset_s not in self._chord_sizes:
            draw, size = self._draw(), self.guide.voicing[-1][0]
            for notes, share in self.guide.voicing:
                if draw < share:
                    size = notes
                    break
                draw -= share
            self._chord_sizes[onset_s] = size
        return len(attack) < self._chord_sizes[onset_s]

    def _on_pulse(self, now_s: float, attacking: bool) -> torch.Tensor:
        """Every time shift lands on the performer's grid (one token reaches it: no crawl of
        small shifts), and off the grid no new attack may start (a chord's own notes may)."""
        step_s = self.guide.pulse_s
        assert step_s
        keep = torch.ones(self._tok.vocab_size, dtype=torch.bool)
        into = ((now_s + self._shift_s - self.guide.pulse_anchor_s) / step_s) % 1.0
        off_grid = torch.minimum(into, 1.0 - into) * step_s > self._tolerance_s
        if not bool(off_grid.all()):
            keep[self._shift_ids[off_grid]] = False
        into_s = (now_s - self.guide.pulse_anchor_s) % step_s
        if not attacking and min(into_s, step_s - into_s) > self._tolerance_s:
            keep[self._program_id] = False
        return keep

    def _too_dense(self, now_s: float, played: Sequence[Note]) -> bool:
        if self.guide.onsets_per_s is None:
            return False
        since_s = now_s - DENSITY_WINDOW_S
        onsets = sum(1 for n in (*self._recent, *played) if n.player == AI and since_s < n.start_s <= now_s)
        return onsets >= self.guide.onsets_per_s * DENSITY_WINDOW_S

    def _pitch_mask(self, keep) -> torch.Tensor:
        mask = torch.ones(self._tok.vocab_size, dtype=torch.bool)
        for p, token_id in zip(self._pitches, self._pitch_ids.tolist()):
            mask[token_id] = bool(keep(p))
        return mask

    def _draw(self) -> float:
        return float(torch.rand((), generator=self._generator))
