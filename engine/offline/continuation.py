"""Offline continuation (`jamtui generate`): the model answers a prompt phrase, chunk by chunk.

The phrase and what the model has played so far go into a `ContextStream`, the live
engine's warm context (after the prime phrases, when given), and the model plays chunk by chunk
until the decoder's clock passes each chunk's end: the same context and sampler as a jam, without
the clock.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from engine.duet.context import ContextStream
from engine.duet.guide import Steering, guide_for
from engine.events import AI, Note
from engine.model.sampling import Sampling
from engine.presets.schema import Mode, Preset
from engine.tokens.conditions import Conditions
from engine.tokens.grammar import NoteGrammar
from engine.tokens.tokenizer import JamTokenizer

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


def continue_notes(model, tokenizer: JamTokenizer, prompt: list[Note], seconds: float, *,
                   sampling: Sampling = Sampling(temperature=0.95, top_p=0.95, repetition_penalty=1.05),
                   seed: int = 0, conditions: Conditions | None = None, context_s: float = 10.0,
                   chunk_s: float = 2.0, players: tuple[int, ...] = (AI,),
                   guided: bool = True, prime: Sequence[Note] = (),
                   on_progress: Callable[[float, float], None] | None = None) -> tuple[list[Note], ContinuationStats]:
    """Notes the model plays for `seconds` after the prompt's last onset (prompt not included).
    `guided`: steered as a jam is (`engine.duet.guide`): no re-strikes, and the key and pace of
    the prompt's last seconds, as the default preset reads a performer's. `prime`: the AI's
    notes the context starts with, as a preset's prime phrases (`engine.duet.prime.read_prime`).
    `on_progress(done_s, seconds)` is called after each chunk."""
    generator = torch.Generator().manual_seed(seed)
    allowed = NoteGrammar(tokenizer, players)
    everything = sorted(prompt, key=lambda n: n.start_s)
    t_s = max((n.start_s for n in everything), default=0.0)
    end_s = t_s + seconds
    guide = guide_for(Preset(), Mode.CONTINUOUS, everything, t_s) if guided else None
    generated: list[Note] = []
    chunks = tokens = 0
    compute_s = 0.0
    stream = ContextStream(model, tokenizer, context_s=context_s)  # the live engine's context, without the clock
    while t_s < end_s:
        chunk_end_s = min(t_s + chunk_s, end_s)
        started = time.perf_counter()
        stream.sync(everything, t_s, conditions, prime=prime)
        steering = Steering(guide, tokenizer, everything, generator) if guide is not None else None
        played = stream.play(t_s, chunk_end_s, sampling, allowed, generator=generator, steering=steering)
        compute_s += time.perf_counter() - started
        tokens += played.tokens
        chunks += 1
        kept = [n for n in played.notes if t_s <= n.start_s < chunk_end_s]
        generated += kept
        everything = sorted(everything + kept, key=lambda n: n.start_s)
        t_s = chunk_end_s
        if on_progress is not None:
            on_progress(seconds - (end_s - t_s), seconds)
    return generated, ContinuationStats(chunks, tokens, compute_s, seconds)
