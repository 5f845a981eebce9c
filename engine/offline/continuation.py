"""Offline continuation (`jamtui generate`): the model answers a prompt phrase, chunk by chunk.

The phrase and what the model has played so far go into a `ContextStream`, the live
engine's warm context, and the model plays chunk by chunk until the decoder's clock passes
each chunk's end: the same context and sampler as a jam, without the clock.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import torch

from engine.duet.context import ContextStream
from engine.tokens.conditions import Conditions
from engine.events import AI, PERFORMER, PLAYER_NAMES, Note
from engine.model.sampling import Sampling
from engine.midi.midifile import TimedMessage
from engine.tokens.grammar import NoteGrammar
from engine.tokens.tokenizer import JamTokenizer
from engine.midi.notes import fold_sustain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContinuationStats:
    chunks: int
    tokens: int
    compute_s: float
    music_s: float

    @property
    def rtf(self) -> float:
        return self.music_s / self.compute_s if self.compute_s else float("inf")


def notes_from_events(events: list[TimedMessage], player: int = PERFORMER) -> list[Note]:
    """Whole notes of a parsed MIDI file (all channels as one player), sustain pedal folded in."""
    held: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes: list[Note] = []
    pedal_down: dict[int, float] = {}
    pedals: list[tuple[float, float]] = []
    end_s = max((e.t_s for e in events), default=0.0)
    for e in events:
        status, channel = e.data[0] & 0xF0, e.data[0] & 0x0F
        if status == 0x90 and e.data[2] > 0:
            held.setdefault((channel, e.data[1]), []).append((e.t_s, e.data[2]))
        elif status in (0x80, 0x90):
            starts = held.get((channel, e.data[1]))
            if starts:
                start_s, velocity = starts.pop(0)
                notes.append(Note(start_s, max(e.t_s, start_s + 0.005), e.data[1], velocity, player))
        elif status == 0xB0 and e.data[1] == 64:
            if e.data[2] >= 64:
                pedal_down.setdefault(channel, e.t_s)
            elif channel in pedal_down:
                pedals.append((pedal_down.pop(channel), e.t_s))
    for (_, pitch), starts in held.items():
        notes += [Note(s, max(end_s, s + 0.25), pitch, v, player) for s, v in starts]
    pedals += [(down, end_s) for down in pedal_down.values()]
    return sorted(fold_sustain(notes, pedals), key=lambda n: (n.start_s, n.pitch))


def continue_notes(model, tokenizer: JamTokenizer, prompt: list[Note], seconds: float, *,
                   sampling: Sampling = Sampling(temperature=0.95, top_p=0.95, repetition_penalty=1.05),
                   seed: int = 0, conditions: Conditions | None = None, context_s: float = 10.0,
                   chunk_s: float = 2.0, players: tuple[int, ...] = (AI,)) -> tuple[list[Note], ContinuationStats]:
    """Notes the model plays for `seconds` after the prompt's last onset (prompt not included)."""
    generator = torch.Generator().manual_seed(seed)
    allowed = NoteGrammar(tokenizer, players)
    everything = sorted(prompt, key=lambda n: n.start_s)
    t_s = max((n.start_s for n in everything), default=0.0)
    end_s = t_s + seconds
    generated: list[Note] = []
    chunks = tokens = 0
    compute_s = 0.0
    stream = ContextStream(model, tokenizer, context_s=context_s)  # the live engine's context, without the clock
    while t_s < end_s:
        chunk_end_s = min(t_s + chunk_s, end_s)
        started = time.perf_counter()
        stream.sync(everything, t_s, conditions)
        played = stream.play(t_s, chunk_end_s, sampling, allowed, generator=generator)
        compute_s += time.perf_counter() - started
        tokens += played.tokens
        chunks += 1
        kept = [n for n in played.notes if t_s <= n.start_s < chunk_end_s]
        generated += kept
        everything = sorted(everything + kept, key=lambda n: n.start_s)
        t_s = chunk_end_s
    return generated, ContinuationStats(chunks, tokens, compute_s, seconds)


def write_duet(path: Path, notes: list[Note], *, ticks_per_beat: int = 480) -> None:
    """A type-1 MIDI file, one track per player (performer, ai), at 120 bpm so seconds map to ticks."""
    ticks_per_s = ticks_per_beat * 2
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for player, name in enumerate(PLAYER_NAMES):
        timed = []
        for n in notes:
            if n.player == player:
                timed.append((round(n.start_s * ticks_per_s), 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity, channel=player)))
                timed.append((round(n.end_s * ticks_per_s), 0, mido.Message("note_off", note=n.pitch, velocity=0, channel=player)))
        timed.sort(key=lambda item: (item[0], item[1]))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        if player == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
        last = 0
        for tick, _, message in timed:
            track.append(message.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    tmp = path.with_name(path.name + ".tmp")
    midi.save(tmp)
    tmp.replace(path)
