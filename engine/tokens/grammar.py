"""The note grammar for sampling: which token ids may come next so every sampled note is well
formed, for the players the model may play."""
from __future__ import annotations

import torch

from engine.events import AI, PERFORMER
from engine.tokens.tokenizer import CONDITION, DURATION, PITCH, PROGRAM, SHIFT, VELOCITY, JamTokenizer


def generation_mask(tokenizer: JamTokenizer, players: tuple[int, ...]) -> torch.Tensor:
    """Ids the model may sample: notes of `players` only; no pad, bos, eos or conditions."""
    allowed = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    for token_id in range(tokenizer.vocab_size):
        if tokenizer.kind(token_id) == CONDITION:
            allowed[token_id] = False
    for token_id in (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id):
        allowed[token_id] = False
    for player in (PERFORMER, AI):
        if player not in players:
            allowed[tokenizer.token_id(f"Program_{player}")] = False
    return allowed


class NoteGrammar:
    """The allowed-ids callable for sampling: keeps every note well formed.

    After Program only a Pitch may follow, then a Velocity, then a Duration; between notes
    a TimeShift or the Program of a player in `players`. The model still chooses which
    pitch, how loud and when; it can no longer waste tokens on a broken note.
    """

    def __init__(self, tokenizer: JamTokenizer, players: tuple[int, ...]) -> None:
        base = generation_mask(tokenizer, players)
        kinds = torch.tensor(tokenizer.kinds)
        self._kind = tokenizer.kind
        self._next = {
            PROGRAM: base & (kinds == PITCH),
            PITCH: base & (kinds == VELOCITY),
            VELOCITY: base & (kinds == DURATION),
        }
        self._between = base & ((kinds == SHIFT) | (kinds == PROGRAM))

    def __call__(self, history: list[int]) -> torch.Tensor:
        kind = self._kind(history[-1]) if history else None
        return self._next.get(kind, self._between)
