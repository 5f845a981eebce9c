"""The generation worker: one chunk of AI notes from a frozen request, and the thread that runs it.

Each chunk re-encodes the last `context_s` seconds of both players, prefills the KV cache
and samples under `NoteGrammar` until the decoder's clock passes the chunk end. A prefill
of ~330 tokens costs ~20 ms on a laptop CPU, so this is simple and fast enough; keeping the
cache warm between chunks (extend it with the performer's new notes through
`IncrementalDecoder.append_notes` instead of re-encoding) is the later optimisation.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch

from engine.conditions import Conditions
from engine.continuation import NoteGrammar, sample_chunk
from engine.events import AI, Note
from engine.generate import Sampling
from engine.tokenizer import JamTokenizer

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


@dataclass(frozen=True)
class ChunkResult:
    request: ChunkRequest
    notes: tuple[Note, ...]  # AI notes inside the chunk, session seconds, not yet blended
    tokens: int
    compute_s: float  # real compute (time.perf_counter), also under a FakeClock
    error: BaseException | None = None


class ChunkGenerator:
    """Owns the model, its KV cache and the seeded sampler. Generation thread only (or the
    simulation's single thread)."""

    def __init__(self, model, tokenizer: JamTokenizer, *, seed: int = 0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cache = model.new_cache()
        self.grammar = NoteGrammar(tokenizer, (AI,))
        self.generator = torch.Generator().manual_seed(seed)

    def run(self, request: ChunkRequest) -> ChunkResult:
        """Never raises: a failing model gives a result with `error` set and no notes."""
        started = time.perf_counter()
        try:
            notes, tokens = self._run(request)
        except Exception as exc:  # noqa: BLE001 - the session decides; the music goes on
            log.exception("generation failed for the chunk at %.2f s", request.from_s)
            return ChunkResult(request, (), 0, time.perf_counter() - started, exc)
        return ChunkResult(request, tuple(notes), tokens, time.perf_counter() - started)

    def _run(self, request: ChunkRequest) -> tuple[list[Note], int]:
        t_s, chunk_end_s = request.from_s, request.from_s + request.chunk_s
        fresh, n_tokens = sample_chunk(self.model, self.tokenizer, self.cache, list(request.context), t_s,
                                       chunk_end_s, context_s=request.context_s, conditions=request.conditions,
                                       sampling=request.sampling, allowed=self.grammar, generator=self.generator)
        return [n for n in fresh if n.player == AI and t_s <= n.start_s < chunk_end_s], n_tokens


class GenerationWorker:
    """The generation thread: takes `ChunkRequest`s, posts `ChunkResult`s to `on_result`.

    `submit` and `stop` may be called from any thread; `on_result` runs on this thread.
    """

    def __init__(self, chunks: ChunkGenerator, on_result: Callable[[ChunkResult], None]) -> None:
        self._chunks = chunks
        self._on_result = on_result
        self._requests: queue.Queue[ChunkRequest | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jamtui-generate", daemon=True)
        self._thread.start()

    def submit(self, request: ChunkRequest) -> None:
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
            self._on_result(self._chunks.run(request))
