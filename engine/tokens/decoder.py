"""The incremental decoder: token ids to Notes the moment each note's last token arrives,
with the performer's notes and the passing time taken into the same stream.
"""
from __future__ import annotations

import collections
from typing import Iterable

from engine.events import Note
from engine.tokens.tokenizer import BOS, CONDITION, DURATION, EOS, PAD, PITCH, PROGRAM, SHIFT, VELOCITY, JamTokenizer


class IncrementalDecoder:
    """A state machine over token kinds: a note comes out the moment its Duration token
    arrives. Tokens that do not fit are skipped and noted in `problems`.

    The engine may also put the performer's notes into the same stream with
    `append_notes`, and move time on with `advance_to`. Not thread-safe: one owner thread.
    """

    def __init__(self, tokenizer: JamTokenizer, *, start_s: float = 0.0, max_problems: int | None = 100) -> None:
        self.tokenizer = tokenizer
        self.start_s = start_s
        self.tick = 0
        self.ended = False
        self.problems: collections.deque[tuple[int, str]] = collections.deque(maxlen=max_problems)
        self.problem_count = 0
        self._index = -1
        self._in_header = True
        self._partial: list[int] = []  # program, pitch, velocity so far

    @property
    def now_s(self) -> float:
        return self.start_s + self.tick * self.tokenizer.tick_s

    @property
    def at_boundary(self) -> bool:
        """True when no note is half-way through its tokens."""
        return not self._partial

    def feed_all(self, ids: Iterable[int]) -> list[Note]:
        notes = []
        for token_id in ids:
            notes += self.feed(token_id)
        return notes

    def feed(self, token_id: int) -> list[Note]:
        """Take one id; return the note it completes, if any."""
        self._index += 1
        tok = self.tokenizer
        if not isinstance(token_id, int) or not 0 <= token_id < tok.vocab_size:
            try:  # numpy and torch integers are welcome
                token_id = int(token_id)
            except (TypeError, ValueError):
                token_id = -1
            if not 0 <= token_id < tok.vocab_size:
                self._problem("id outside the vocabulary")
                return []
        kind, value = tok.kind(token_id), tok.value(token_id)
        if kind == PAD:  # padding is fine anywhere, after EOS included
            return []
        if self.ended:
            self._problem("token after EOS")
            return []
        if kind in (BOS, CONDITION):
            if not self._in_header or (kind == BOS and self._index > 0):
                self._problem(f"{tok.vocab[token_id]} after the start")
            return []
        self._in_header = False
        expected = len(self._partial)
        if kind == EOS:
            self._cut()
            self.ended = True
        elif kind == SHIFT:
            self._cut()
            self.tick += value
        elif kind == PROGRAM:
            self._cut()
            self._partial = [value]
        elif (kind, expected) in ((PITCH, 1), (VELOCITY, 2)):
            self._partial.append(value)
        elif kind == DURATION and expected == 3:
            player, pitch, velocity = self._partial
            self._partial = []
            start_s = self.now_s
            return [Note(start_s, start_s + value * tok.tick_s, pitch, velocity, player)]
        else:
            self._partial = []
            self._problem(f"{tok.vocab[token_id]} out of place")
        return []

    def advance_to(self, t_s: float) -> list[int]:
        """Move time on to t_s with TimeShift tokens (none if already there); returns them."""
        ticks = round((t_s - self.start_s) / self.tokenizer.tick_s) - self.tick
        ids = self.tokenizer.shift_ids(ticks) if ticks > 0 else []
        self.feed_all(ids)
        return ids

    def append_notes(self, notes: Iterable[Note]) -> list[int]:
        """Encode notes (the performer's, usually) from the current time on and take them
        into the state; returns their ids for the model's context. Call between notes: a
        half-done note is dropped. Notes earlier than now are moved up to now."""
        self._cut()
        ids, _ = self.tokenizer.encode_notes(notes, origin_s=self.start_s, from_tick=self.tick)
        self.feed_all(ids)
        return ids

    def _cut(self) -> None:
        if self._partial:
            self._partial = []
            self._problem("note left incomplete")

    def _problem(self, reason: str) -> None:
        self.problem_count += 1
        self.problems.append((self._index, reason))


def decode(tokenizer: JamTokenizer, ids: Iterable[int], *, start_s: float = 0.0) -> list[Note]:
    """All complete notes in `ids`; ill-formed tokens are skipped, never raised on."""
    return IncrementalDecoder(tokenizer, start_s=start_s).feed_all(ids)


def validate_tokens(tokenizer: JamTokenizer, ids: Iterable[int]) -> list[tuple[int, str]]:
    """(index, reason) for every token the decoder had to skip; empty when well formed.
    A sequence that stops inside a note counts as one problem at its end."""
    decoder = IncrementalDecoder(tokenizer, max_problems=None)
    decoder.feed_all(ids)
    if not decoder.at_boundary:
        decoder._problem("sequence ends inside a note")
    return list(decoder.problems)
