"""The generation worker: one chunk of AI notes from a frozen request, and the thread that runs it.

The model's context is a `ContextStream` kept warm between chunks: each request carries
the notes both players have played, the stream takes in only what changed (a few tokens),
and the model samples under `NoteGrammar` until its clock passes the chunk end. Between
chunks the session posts `SyncRequest`s as the performer's notes arrive, so when the AI's
turn comes only the turn's own tokens remain to compute. A `SwapRequest` hands it another model
(another style) between two chunks: the context is read again by the new model (one prefill) and
the next chunk is written by it. Every request carries the preset's prime notes (the AI's phrases
at the start of the context, `engine.duet.prime`); other ones than the stream holds are read in
at once (one prefill), like other conditions.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from engine.tokens.conditions import Conditions
from engine.tokens.grammar import NoteGrammar
from engine.events import AI, Note
from engine.model.sampling import Sampling
from engine.duet.context import ContextStream
from engine.duet.guide import Guide, Steering
from engine.tokens.tokenizer import JamTokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkRequest:
    """Everything one chunk needs, made by the session's thread; the worker only reads it.

    `context` holds both players' notes (the performer's already through `interleave`),
    with times in session seconds. The model writes notes in [from_s, from_s + chunk_s).
    """

    epoch: int
    from_s: float
    chunk_s: float
    context: tuple[Note, ...]
    context_s: float
    conditions: Conditions | None
    sampling: Sampling
    enter: bool = False  # the AI's first note sounds at from_s (the start of a turn)
    guide: Guide | None = None  # what its notes respect while sampled (re-strikes, density, key, register)
    prime: tuple[Note, ...] = ()  # the AI's notes the context starts with (`engine.duet.prime`)


@dataclass(frozen=True)
class SyncRequest:
    """Take the notes played so far into the warm context; no result."""

    context: tuple[Note, ...]
    t_s: float
    context_s: float
    conditions: Conditions | None
    prime: tuple[Note, ...] = ()


@dataclass(frozen=True)
class EntryRequest:
    """Sample, ahead, the first note an answer starting at `at_s` would play (for a cue that
    cannot be predicted, such as a hand-over key); `gen` tells a stale one from the latest."""

    gen: int
    at_s: float
    context: tuple[Note, ...]
    context_s: float
    conditions: Conditions | None
    sampling: Sampling
    prime: tuple[Note, ...] = ()


@dataclass(frozen=True)
class EntryResult:
    request: EntryRequest
    note: Note | None
    compute_s: float


@dataclass(frozen=True)
class SwapRequest:
    """Play `model` from the next chunk on: it reads the notes played so far (one prefill)
    before it writes anything; `label` names it in the events."""

    model: Any
    label: str
    sync: SyncRequest  # the notes it reads first


@dataclass(frozen=True)
class ModelSwapped:
    request: SwapRequest
    compute_s: float  # the new model's prefill of the context
    error: BaseException | None = None  # the old model plays on


@dataclass(frozen=True)
class ChunkResult:
    request: ChunkRequest
    notes: tuple[Note, ...]  # AI notes inside the chunk, session seconds, not yet blended
    tokens: int
    compute_s: float  # real compute (time.perf_counter), also under a FakeClock
    error: BaseException | None = None
    first_note_s: float | None = None  # compute until the chunk's first note was complete
    streamed: tuple[Note, ...] = ()  # notes already handed out one by one (`NoteResult`)


@dataclass(frozen=True)
class NoteResult:
    """One note of a turn's first chunk, handed out the moment its last token is sampled, so
    an entry that could not be prepared ahead (a hand-over key) sounds without waiting for
    the rest of the chunk."""

    request: ChunkRequest
    note: Note
    compute_s: float  # since the chunk began


class ChunkGenerator:
    """Owns the model, its KV cache and the seeded sampler. Generation thread only (or the
    simulation's single thread)."""

    def __init__(self, model, tokenizer: JamTokenizer, *, seed: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.stream = ContextStream(model, tokenizer)
        self.grammar = NoteGrammar(tokenizer, (AI,))
        self.generator = torch.Generator().manual_seed(seed)

    def sync(self, request: SyncRequest) -> None:
        """Never raises (a failure shows again, and is reported, at the next chunk)."""
        try:
            self.stream.sync(request.context, request.t_s, request.conditions, request.context_s, request.prime)
            self.stream.flush()
        except Exception:  # noqa: BLE001
            log.exception("syncing the context failed")
            self.stream.cache.reset()  # the next chunk rebuilds it

    def swap(self, request: SwapRequest) -> ModelSwapped:
        """Play `request.model` from now on, its context already prefilled (the old model's
        stream and KV cache are dropped with it). Never raises: on a failure the old model stays."""
        started = time.perf_counter()
        try:
            read = request.sync
            stream = ContextStream(request.model, self.tokenizer, context_s=read.context_s)
            stream.sync(read.context, read.t_s, read.conditions, read.context_s, read.prime)
            stream.flush()
        except Exception as exc:  # noqa: BLE001 - the AI plays on with the model it has
            log.exception("the model %s could not take over", request.label)
            return ModelSwapped(request, time.perf_counter() - started, exc)
        self.model, self.stream = request.model, stream
        return ModelSwapped(request, time.perf_counter() - started)

    def prepare_entry(self, request: EntryRequest) -> EntryResult:
        """Never raises: a failure gives no note (the answer then enters the usual way)."""
        started = time.perf_counter()
        try:
            self.stream.sync(request.context, request.at_s, request.conditions, request.context_s, request.prime)
            played = self.stream.play(request.at_s, request.at_s + 60.0, request.sampling, self.grammar,
                                      generator=self.generator, enter=True, max_new_tokens=4)  # one whole note
            note = next((n for n in played.notes if n.player == AI), None)
        except Exception:  # noqa: BLE001
            log.exception("preparing an entry failed")
            self.stream.cache.reset()
            note = None
        return EntryResult(request, note, time.perf_counter() - started)

    def run(self, request: ChunkRequest, on_note: Callable[[NoteResult], None] | None = None) -> ChunkResult:
        """Never raises: a failing model gives a result with `error` set and no notes.
        `on_note`: each note of an entering chunk as soon as it is complete."""
        started = time.perf_counter()
        first: list[float] = []
        streamed: list[Note] = []
        end_s = request.from_s + request.chunk_s

        def each(note: Note) -> None:
            if not request.from_s <= note.start_s < end_s:
                return
            first.append(time.perf_counter() - started)
            if on_note is not None and request.enter:
                streamed.append(note)
                on_note(NoteResult(request, note, first[-1]))

        try:
            notes, tokens = self._run(request, each)
        except Exception as exc:  # noqa: BLE001 - the session decides; the music goes on
            log.exception("generation failed for the chunk at %.2f s", request.from_s)
            return ChunkResult(request, (), 0, time.perf_counter() - started, exc, streamed=tuple(streamed))
        return ChunkResult(request, tuple(notes), tokens, time.perf_counter() - started,
                           first_note_s=first[0] if first else None, streamed=tuple(streamed))

    def _run(self, request: ChunkRequest, on_note: Callable[[Note], None]) -> tuple[list[Note], int]:
        t_s, chunk_end_s = request.from_s, request.from_s + request.chunk_s
        try:
            self.stream.sync(request.context, t_s, request.conditions, request.context_s, request.prime)
            steering = (Steering(request.guide, self.stream.tokenizer, request.context, self.generator)
                        if request.guide is not None else None)
            played = self.stream.play(t_s, chunk_end_s, request.sampling, self.grammar, generator=self.generator,
                                      enter=request.enter, on_note=on_note, steering=steering)
        except Exception:
            self.stream.cache.reset()  # whatever state it was left in, the next chunk rebuilds it
            raise
        return [n for n in played.notes if n.player == AI and t_s <= n.start_s < chunk_end_s], played.tokens


class GenerationWorker:
    """The generation thread: takes `ChunkRequest`s, posts `ChunkResult`s to `on_result`. A
    `SwapRequest` is taken in its turn, so the model changes between two chunks, never inside one.

    `submit` and `stop` may be called from any thread; `on_result` runs on this thread.
    """

    def __init__(self, chunks: ChunkGenerator,
                 on_result: Callable[[ChunkResult | NoteResult | EntryResult | ModelSwapped], None]) -> None:
        self._chunks = chunks
        self._on_result = on_result
        self._requests: queue.Queue[ChunkRequest | SyncRequest | EntryRequest | SwapRequest | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jamtui-generate", daemon=True)
        self._thread.start()

    def submit(self, request: ChunkRequest | SyncRequest | EntryRequest | SwapRequest) -> None:
        self._requests.put(request)

    @property
    def depth(self) -> int:
        return self._requests.qsize()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._requests.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = self._requests.get()
            if request is None or self._stop.is_set():
                return
            if isinstance(request, SyncRequest):
                if self._requests.empty():  # a newer request carries newer notes: skip this one
                    self._chunks.sync(request)
                continue
            if isinstance(request, EntryRequest):
                self._on_result(self._chunks.prepare_entry(request))
                continue
            if isinstance(request, SwapRequest):
                self._on_result(self._chunks.swap(request))
                continue
            self._on_result(self._chunks.run(request, on_note=self._on_result))
