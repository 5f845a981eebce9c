"""The model's side of the duet: one token stream of both players in a warm KV cache.

The stream holds notes in time order as tokens the model has already read. `sync(notes)`
makes it hold exactly `notes` from its origin on: it keeps the longest common beginning,
rolls the cache back to the first difference (an AI note that was never played, a performer
note that arrived late) and appends the rest. A performer's note therefore costs a handful
of tokens when it arrives, not a prefill when the AI's turn comes. `play(...)` moves time on
and lets the model play until a given time, handing out each note the moment its last token
is sampled. `rebuild` re-encodes the last `context_s` seconds (one prefill, ~20-30 ms on a
laptop CPU): at the start, when the cache is nearly full (the window slides) and when the
preset's conditions or prime change.

A preset's prime phrases (`engine.duet.prime`) are the AI's notes in a fixed prefix right after
the conditions: `BOS [conditions] prime... window...`. Their tokens are encoded once per prime, a
rollback never reaches into them and the window slides behind them, so everything the model writes
reads them first. They share the trained length with the window (at most a quarter of it): the
model was trained on 512-token windows and reads worse past them. A rebuild keeps the cached
tokens that open the new sequence unchanged (BOS, conditions, prime: the same ids at the same
positions give the same keys and values) and runs only the rest through the model.

Notes are matched by (tick, player, pitch): a velocity or duration that changed after the
note entered the stream (a held key's real length, the AI's velocity blending) is not
re-encoded. Generation thread only (or the simulation's single thread).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from engine.duet.guide import Steering
from engine.duet.prime import prime_ids
from engine.tokens.conditions import Conditions, fill_conditions
from engine.events import AI, Note
from engine.model.sampling import Sampling, generate
from engine.tokens.decoder import IncrementalDecoder
from engine.tokens.tokenizer import JamTokenizer

log = logging.getLogger(__name__)
TRAINED_TOKENS = 512  # the longest sequence the model saw in training: the context stays within it
REBUILD_TOKENS = 320  # a rebuilt context leaves the rest of that for what is played next
PLAY_ROOM_TOKENS = 96  # room a chunk needs; with less, the window slides first
PRIME_SHARE = 4  # the prime phrases take at most 1/PRIME_SHARE of the window's tokens
MAX_NEW_TOKENS = 512  # a model that never moves time on must still end its chunk


@dataclass(frozen=True)
class _Entry:
    key: tuple[int, int, int]  # (tick from the origin, player, pitch)
    pos_after: int  # cache length just after the note's last token


@dataclass(frozen=True)
class PlayResult:
    notes: list[Note]  # the model's notes (session seconds), in the order sampled
    tokens: int  # tokens sampled
    appended: int  # tokens run through the model to catch up (sync, time shifts)


class ContextStream:
    def __init__(self, model, tokenizer: JamTokenizer, *, context_s: float = 10.0,
                 window_tokens: int = TRAINED_TOKENS) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.context_s = context_s
        self.window_tokens = window_tokens
        self.cache = model.new_cache()
        self.origin_s = 0.0
        self.rebuilds = 0
        self._given: Conditions | None = None
        self._prime: tuple[Note, ...] = ()
        self._prime_ids: list[int] = []
        self._header_len = 0  # BOS, conditions and prime: what a rollback never reaches
        self._entries: list[_Entry] = []
        self._tick = 0  # the stream's clock, in ticks from the origin
        self._pending: list[int] = []  # ids to run through the model before the next sample

    @property
    def now_s(self) -> float:
        return self.origin_s + self._tick * self.tokenizer.tick_s

    @property
    def length(self) -> int:
        return self.cache.length + len(self._pending)

    def keys(self) -> list[tuple[int, int, int]]:
        return [e.key for e in self._entries]

    @property
    def prime_tokens(self) -> int:
        """Tokens of the prime phrases at the start of the context (0 without a prime)."""
        return len(self._prime_ids)

    @property
    def header_tokens(self) -> int:
        """BOS, conditions and prime: the tokens before the window's first note."""
        return self._header_len

    # -- building and syncing ---------------------------------------------------------------

    def rebuild(self, notes: Sequence[Note], t_s: float, conditions: Conditions | None,
                prime: Sequence[Note] = ()) -> None:
        """Start over with the notes of the last `context_s` before `t_s` (one prefill), or
        of a shorter stretch when those take more than REBUILD_TOKENS (a dense passage).
        `conditions` are the preset's (compared by `sync`); the context fills what they leave open.
        `prime`: the AI's notes of the preset's prime phrases (`engine.duet.prime.read_prime`)."""
        prefix = self._prime_prefix(prime)
        budget = min(REBUILD_TOKENS, self.window_tokens - PLAY_ROOM_TOKENS)
        window_s = self.context_s
        while True:
            self.origin_s = max(0.0, t_s - window_s)
            kept = _in_order([n for n in notes if self.origin_s <= n.start_s < t_s], self.origin_s, self.tokenizer)
            header = [self.tokenizer.bos_id]
            filled = fill_conditions(conditions, kept, t_s - self.origin_s)
            if filled is not None:
                header += self.tokenizer.condition_ids(filled)
            header += prefix
            self._given, self._header_len = conditions, len(header)
            self._entries, self._tick = [], 0
            ids = header + self._encode(kept, len(header))
            if len(ids) <= budget or window_s <= 0.5:
                break
            # A dense passage: a shorter stretch (the prime's tokens stay whatever the stretch).
            window_s = max(0.5, window_s * 0.95 * (budget - len(prefix)) / (len(ids) - len(prefix)))
        self._pending = []
        self._prefill(ids)
        self.rebuilds += 1

    def sync(self, notes: Sequence[Note], t_s: float, conditions: Conditions | None,
             context_s: float | None = None, prime: Sequence[Note] = ()) -> int:
        """Make the stream hold `notes` (both players, session seconds) from its origin up to
        `t_s`, after the `prime` notes. Returns the tokens appended. Rebuilds when the conditions
        or the prime changed or room runs out; `context_s` (when given) is the length a rebuild
        keeps from now on."""
        if context_s is not None:
            self.context_s = context_s
        if (self.cache.length == 0 or conditions != self._given or tuple(prime) != self._prime
                or t_s - self.origin_s > 3 * self.context_s):
            self.rebuild(notes, t_s, conditions, prime)
            return self.length
        wanted = _in_order([n for n in notes if self.origin_s <= n.start_s < t_s], self.origin_s, self.tokenizer)
        keys = [_key(n, self.origin_s, self.tokenizer) for n in wanted]
        same = 0
        for have, want in zip(self._entries, keys):
            if have.key != want:
                break
            same += 1
        rest = wanted[same:]
        if same < len(self._entries) or (rest and keys[same][0] < self._tick):
            self._rollback(same)
        ids = self._encode(rest, self.length)
        if self.length + len(ids) > self.window_tokens - PLAY_ROOM_TOKENS:  # the window slides
            self.rebuild(notes, t_s, conditions, prime)
            return self.length
        self._pending += ids
        return len(ids)

    def flush(self) -> None:
        """Run pending tokens through the model now (keeps `play` short when the turn comes)."""
        if self._pending:
            self.model.extend(self._pending, self.cache)
            self._pending = []

    # -- playing ----------------------------------------------------------------------------

    def play(self, from_s: float, until_s: float, sampling: Sampling, grammar: Callable[[list[int]], torch.Tensor], *,
             generator: torch.Generator | None = None, enter: bool = False,
             on_note: Callable[[Note], None] | None = None, max_new_tokens: int = MAX_NEW_TOKENS,
             steering: Steering | None = None) -> PlayResult:
        """The model plays from `from_s` until its clock passes `until_s`. With `enter` its
        first token is the AI's Program: the first note sounds exactly at `from_s`. `steering`
        narrows what the grammar allows (re-strikes, density, scale, register)."""
        tok = self.tokenizer
        from_tick = max(0, round((from_s - self.origin_s) / tok.tick_s))
        # The model's clock runs on a grid of ticks; its notes are moved by less than half a
        # tick so the chunk starts exactly at from_s (an entry sounds on its cue).
        offset_s = self.origin_s + from_tick * tok.tick_s - from_s
        if from_tick < self._tick:  # the stream ran ahead (a chunk's final time shift): go back
            keep = sum(1 for e in self._entries if e.key[0] <= from_tick)
            self._rollback(keep)
        prompt = self._pending + (tok.shift_ids(from_tick - self._tick) if from_tick > self._tick else [])
        appended = len(prompt)
        self._pending = []
        self._tick = max(self._tick, from_tick)
        decoder = IncrementalDecoder(tok, start_s=self.origin_s)
        decoder.tick = self._tick
        notes: list[Note] = []
        base = self.cache.length + len(prompt)  # position of the first sampled token
        entry_id = tok.token_id(f"Program_{AI}")
        entry_mask = torch.zeros(tok.vocab_size, dtype=torch.bool)
        entry_mask[entry_id] = True

        def allowed(history: list[int]) -> torch.Tensor:
            if enter and len(history) == base:
                return entry_mask
            mask = grammar(history)
            steered = steering.mask(history, decoder.now_s, notes) if steering is not None else None
            if steered is not None and bool((mask & steered).any()):
                mask = mask & steered
            return mask

        def stop(new_ids: list[int]) -> bool:
            for note in decoder.feed(new_ids[-1]):
                tick = round((note.start_s - self.origin_s) / tok.tick_s)
                self._entries.append(_Entry((tick, note.player, note.pitch), base + len(new_ids)))
                note = replace(note, start_s=note.start_s - offset_s, end_s=note.end_s - offset_s)
                notes.append(note)
                if on_note is not None and note.player == AI:
                    on_note(note)
            self._tick = decoder.tick
            return decoder.now_s >= until_s

        room = self.cache.max_len - base - 1
        if room < 16:
            raise RuntimeError("the context stream has no room left; sync or rebuild it first")
        new_ids = generate(self.model, self.cache, prompt, max_new_tokens=min(max_new_tokens, room),
                           sampling=sampling, stop=stop, allowed=allowed, generator=generator)
        if not decoder.at_boundary:  # cut mid-note (the token budget ran out): drop the half note
            self._rollback(len(self._entries))
        return PlayResult(notes, len(new_ids), appended)

    # -- internals --------------------------------------------------------------------------

    def _prime_prefix(self, prime: Sequence[Note]) -> list[int]:
        """The prime's tokens, encoded once per prime."""
        prime = tuple(prime)
        if prime != self._prime:
            self._prime = prime
            self._prime_ids = prime_ids(prime, self.tokenizer, self.window_tokens // PRIME_SHARE)
        return self._prime_ids

    def _prefill(self, ids: list[int]) -> None:
        """The cache holds `ids`. The tokens it already holds at their start stay (causal
        attention: they have the keys and values a fresh prefill would give them, the prime's
        among them); only the rest runs through the model."""
        cache, same = self.cache, 0
        if cache.start_pos == 0 and cache.length and ids:
            n = min(cache.length, len(ids) - 1)  # at least one token runs, for the next logits
            differ = (cache.tokens[:n] != torch.tensor(ids[:n], dtype=cache.tokens.dtype)).nonzero()
            same = int(differ[0]) if len(differ) else n
        if same == 0:
            self.model.prefill(ids, cache)
            return
        cache.truncate(same)
        self.model.extend(ids[same:], cache)

    def _encode(self, notes: Sequence[Note], pos: int) -> list[int]:
        """Tokens for `notes` (in order, none before the stream's clock) from position `pos`;
        records their entries and moves the clock."""
        tok, ids = self.tokenizer, []
        for n in notes:
            key = _key(n, self.origin_s, tok)
            note_ids, _ = tok.encode_notes([n], origin_s=self.origin_s, from_tick=self._tick)
            if not note_ids:  # outside the tokenizer's range or players
                continue
            ids += note_ids
            self._tick = max(self._tick, key[0])
            self._entries.append(_Entry(key, pos + len(ids)))
        return ids

    def _rollback(self, keep: int) -> None:
        """Keep the first `keep` notes; the cache goes back to just after the last of them."""
        self._entries = self._entries[:keep]
        end = self._entries[-1].pos_after if self._entries else self._header_len
        self._tick = self._entries[-1].key[0] if self._entries else 0
        if end >= self.cache.length:  # only pending tokens to drop
            self._pending = self._pending[: end - self.cache.length]
            return
        self._pending = []
        last = int(self.cache.tokens[end - 1])
        self.cache.truncate(end - 1)
        self._pending = [last]  # re-read so the cache has the logits after it


def _key(n: Note, origin_s: float, tok: JamTokenizer) -> tuple[int, int, int]:
    return (round((n.start_s - origin_s) / tok.tick_s), n.player, n.pitch)


def _in_order(notes: Sequence[Note], origin_s: float, tok: JamTokenizer) -> list[Note]:
    """Notes in stream order, one per (tick, player, pitch), within the tokenizer's pitch range."""
    lo, hi = tok.pitch_range
    out, seen = [], set()
    for n in sorted(notes, key=lambda n: (_key(n, origin_s, tok), n.start_s)):
        key = _key(n, origin_s, tok)
        if key in seen or not lo <= n.pitch <= hi:
            continue
        seen.add(key)
        out.append(n)
    return out

