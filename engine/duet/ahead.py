"""What the AI writes ahead of the clock: `Generation`, the session's side of the model (the
AI's part written so far and up to where, the requests and results, the epoch that drops stale
ones) and `Pacing`, the compute estimates that set how far ahead it writes."""
from __future__ import annotations

import queue
from typing import Callable, Iterator, Sequence

from engine.events import Note
from engine.duet.guide import Guide
from engine.duet.performer import MEMORY_S
from engine.duet.settings import conditions_of, prime_of, sampling_of
from engine.duet.worker import (
    ChunkGenerator, ChunkRequest, ChunkResult, EntryRequest, EntryResult, GenerationWorker, ModelSwapped, NoteResult,
    SwapRequest, SyncRequest,
)
from engine.presets.schema import Preset

PREPARE_MIN_S, PREPARE_MAX_S = 0.06, 0.4  # a turn's first chunk is asked for this long before its cue
COMPUTE_GUESS_S = 0.05  # the compute estimates before anything was measured
REVISE_EVERY_S = 0.25  # accompany/continuous: at most this often is the AI's written-ahead part rewritten

Result = ChunkResult | NoteResult | EntryResult | ModelSwapped


class Pacing:
    """Running estimates of generation compute, and the leads they set: how long before a cue
    an entry's first chunk is asked for, how far ahead of now generation writes. Control
    thread only (a UI's `metrics` reads `prepare_s`: a float, always whole)."""

    def __init__(self) -> None:
        self._entry_compute_s = COMPUTE_GUESS_S  # until an entry's first note is ready
        self._chunk_compute_s = COMPUTE_GUESS_S  # a whole chunk

    def measured(self, compute_s: float, ready_s: float, *, entry: bool) -> None:
        """A chunk took `compute_s`, its first note `ready_s`; `entry`: it started a turn."""
        self._chunk_compute_s += 0.2 * (compute_s - self._chunk_compute_s)
        if entry:
            self._entry_compute_s += 0.2 * (ready_s - self._entry_compute_s)

    def prepare_s(self, phrase_gap_s: float | None) -> float:
        """Lead for an entry's first chunk: three times its measured compute, at least
        PREPARE_MIN_S, at most PREPARE_MAX_S and (call-and-response) half the phrase gap."""
        cap = PREPARE_MAX_S if phrase_gap_s is None else min(PREPARE_MAX_S, phrase_gap_s / 2)
        return min(max(3 * self._entry_compute_s + 0.02, PREPARE_MIN_S), cap)

    def lookahead_s(self, preset_lookahead_s: float) -> float:
        """The preset's lookahead, longer on a machine too slow for it (play later, not stutter)."""
        return max(preset_lookahead_s, 2 * self._chunk_compute_s + 0.05)


class Generation:
    """The AI's part, asked of the model ahead of the clock. It keeps the notes the AI has
    written (scheduled, cancelled ones removed), the cursor (written up to there), the epoch
    (a result asked for before the last cancel never sounds), whether a chunk is in flight,
    whether the next one enters, and when to rewrite what is written ahead.

    Each request carries the context: both players' notes, the performer's from
    `heard(since_s, now_s)` (what the model may hear of them), sampled and conditioned as
    the preset says. Live, it goes to the generation thread and its result comes back
    through `results`; otherwise it runs at once and its result is returned to the caller.

    Control thread only, except `depth`, `cursor_s` and `prepare_s` (a UI's metrics read them).
    """

    def __init__(self, model, tokenizer, preset: Preset, *, seed: int,
                 heard: Callable[[float, float], Sequence[Note]],
                 guide: Callable[[float], Guide | None] = lambda _now_s: None) -> None:
        self._chunks = ChunkGenerator(model, tokenizer, seed=seed)
        self._heard = heard
        self._guide = guide  # what a chunk asked for at now_s respects while sampled
        self._notes: list[Note] = []
        self._worker: GenerationWorker | None = None
        self._results: queue.Queue[Result] = queue.Queue()
        self._pacing = Pacing()
        self._epoch = 0  # results of an older epoch (yielded, revised, reset) never sound
        self._in_flight = False
        self._cursor_s = 0.0  # generation writes from here on
        self._enter = False  # the next chunk starts a turn: its first note sounds at its start
        self._revise_at_s: float | None = None  # accompany/continuous: rewrite what is ahead then
        self._revised_s = -1.0
        self.set_preset(preset)

    def set_preset(self, preset: Preset) -> None:
        """Sample, condition, prime and look ahead as `preset` says, from the next request on."""
        self._context_s = preset.context_s
        self._lookahead_s = preset.lookahead_s
        self._sampling = sampling_of(preset.sampling)
        self._conditions = conditions_of(preset.conditioning)
        self._prime = prime_of(preset)

    # -- the generation thread ---------------------------------------------------------------

    def start(self) -> None:
        """Start the generation thread (live): requests go to it from now on. Until then, and
        when not live, each runs at once in the caller's thread."""
        self._worker = GenerationWorker(self._chunks, self._results.put)
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def results(self) -> Iterator[Result]:
        """What the generation thread has finished since the last call, oldest first."""
        while True:
            try:
                yield self._results.get_nowait()
            except queue.Empty:
                return

    @property
    def depth(self) -> int:
        """Requests waiting for the generation thread, and the chunk in flight. Any thread."""
        return (self._worker.depth if self._worker else 0) + int(self._in_flight)

    # -- the AI's part, and where it is written up to ----------------------------------------

    @property
    def notes(self) -> Sequence[Note]:
        """The AI's notes scheduled so far (cancelled ones removed; the last MEMORY_S or so)."""
        return self._notes

    def wrote(self, notes: Sequence[Note], now_s: float) -> None:
        """These notes were scheduled; the AI's part keeps what ended within MEMORY_S of now."""
        self._notes.extend(notes)
        if self._notes and self._notes[0].end_s < now_s - MEMORY_S:
            self._notes = [n for n in self._notes if n.end_s >= now_s - MEMORY_S]

    @property
    def cursor_s(self) -> float:
        """The AI's part is written (or being written) up to here; the next chunk starts here."""
        return self._cursor_s

    @property
    def in_flight(self) -> bool:
        """A chunk is being computed (its result has not been taken)."""
        return self._in_flight

    def seek(self, t_s: float) -> None:
        """The next chunk is written from t_s."""
        self._cursor_s = t_s

    def enter_at(self, t_s: float) -> None:
        """The next chunk is written from t_s and enters: its first note sounds at t_s."""
        self._cursor_s = t_s
        self._enter = True

    def entry_played(self) -> None:
        """The entry's note is already scheduled: the next chunk continues after it."""
        self._enter = False

    def horizon_s(self, now_s: float) -> float:
        """Generation writes up to here: the preset's lookahead from now, longer when compute is slow."""
        return now_s + self._pacing.lookahead_s(self._lookahead_s)

    def prepare_s(self, phrase_gap_s: float | None) -> float:
        """How long before a predicted cue an entry's first chunk is asked for (`Pacing.prepare_s`)."""
        return self._pacing.prepare_s(phrase_gap_s)

    def cancel_after(self, at_s: float) -> None:
        """No note of the AI starts after at_s, and nothing asked for so far sounds: the chunk
        in flight, or waiting, is dropped on arrival."""
        self._notes = [n for n in self._notes if n.start_s <= at_s]
        self._cancel()

    def rewrite_at(self, t_s: float) -> None:
        """Accompany/continuous: the performer played what the model may hear from t_s; what is
        written ahead is rewritten then (or, right after a rewrite, REVISE_EVERY_S after it)."""
        if self._revise_at_s is None:
            self._revise_at_s = max(t_s, self._revised_s + REVISE_EVERY_S)

    def rewrite_due(self, now_s: float) -> bool:
        """A rewrite asked for by `rewrite_at` is due now (asking says it is taken)."""
        if self._revise_at_s is None or now_s < self._revise_at_s:
            return False
        self._revise_at_s = None
        return True

    def rewrite_from(self, keep_s: float, now_s: float) -> bool:
        """What is written from keep_s on is cancelled and written again from there; False (and
        nothing changes) when nothing is written beyond it."""
        if self._cursor_s <= keep_s:
            return False
        self._revised_s = now_s
        self._notes = [n for n in self._notes if n.start_s < keep_s]
        self._cancel()
        self._cursor_s = keep_s
        return True

    # -- requests and results ----------------------------------------------------------------

    def request(self, now_s: float, chunk_s: float) -> ChunkResult | None:
        """The next chunk, from the cursor, `chunk_s` long. Its result: returned when not live."""
        request = ChunkRequest(self._epoch, self._cursor_s, chunk_s, self._context(now_s, self._cursor_s),
                               self._context_s, self._conditions, self._sampling, self._enter, self._guide(now_s),
                               self._prime)
        self._enter = False
        self._in_flight = True
        return self._submit(request)

    def write_now(self, now_s: float, chunk_s: float) -> ChunkResult:
        """A chunk from now_s, computed here whatever the cursor (nothing is scheduled or counted)."""
        return self._chunks.run(ChunkRequest(self._epoch, now_s, chunk_s, self._context(now_s, now_s),
                                             self._context_s, self._conditions, self._sampling,
                                             guide=self._guide(now_s), prime=self._prime))

    def sync(self, now_s: float) -> None:
        """Keep the model's context warm: take in what was played since the last chunk."""
        until_s = max(self._cursor_s, now_s)
        self._submit(self._sync_request(now_s, until_s))

    def _sync_request(self, now_s: float, until_s: float) -> SyncRequest:
        return SyncRequest(self._context(now_s, until_s), until_s, self._context_s, self._conditions, self._prime)

    def swap_model(self, model, label: str, now_s: float) -> ModelSwapped | None:
        """Write with `model` from the next chunk on. The generation thread takes it between two
        chunks (the one in flight, if any, is the old model's and still sounds) and first reads
        the notes played so far with it, so the AI's part goes on without a gap. Its result:
        returned when not live."""
        until_s = max(self._cursor_s, now_s)
        return self._submit(SwapRequest(model, label, self._sync_request(now_s, until_s)))

    def prepare_entry(self, gen: int, now_s: float) -> EntryResult | None:
        """Sample the first note of an answer entering at now_s (`EntryRequest`). Its result:
        returned when not live."""
        return self._submit(EntryRequest(gen, now_s, self._context(now_s, now_s), self._context_s,
                                         self._conditions, self._sampling, self._prime))

    def _context(self, now_s: float, until_s: float) -> tuple[Note, ...]:
        """Both players' notes for the model, from `context_s` before until_s."""
        window_start_s = until_s - self._context_s
        context = sorted([*self._heard(window_start_s, now_s), *(n for n in self._notes if n.end_s > window_start_s)],
                         key=lambda n: (n.start_s, n.pitch))
        return tuple(context)

    def current(self, result: ChunkResult | NoteResult) -> bool:
        """The result was asked for since the last cancel (`cancel_after`, `rewrite_from`);
        an older one never sounds."""
        return result.request.epoch == self._epoch

    def finished(self, result: ChunkResult) -> float:
        """A current chunk came back: nothing is in flight, the part is written to the chunk's
        end. Returns when it was ready: its first note's compute, else the whole chunk's (an
        answer is ready when its first note is; later notes are computed while it plays)."""
        self._in_flight = False
        ready_s = result.first_note_s if result.first_note_s is not None else result.compute_s
        self._pacing.measured(result.compute_s, ready_s, entry=result.request.enter)
        self._cursor_s = result.request.from_s + result.request.chunk_s
        return ready_s

    def _cancel(self) -> None:
        """Results asked for so far are dropped on arrival; nothing is in flight."""
        self._epoch += 1
        self._in_flight = False

    def _submit(self, request: ChunkRequest | SyncRequest | EntryRequest | SwapRequest) -> Result | None:
        """To the generation thread; not live, it runs here and its result is returned."""
        if self._worker is not None:
            self._worker.submit(request)
            return None
        if isinstance(request, SyncRequest):
            self._chunks.sync(request)
            return None
        if isinstance(request, EntryRequest):
            return self._chunks.prepare_entry(request)
        if isinstance(request, SwapRequest):
            return self._chunks.swap(request)
        return self._chunks.run(request)
