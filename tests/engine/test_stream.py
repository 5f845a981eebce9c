"""The warm context stream: incremental sync and rollback equal a fresh encode and prefill."""
from __future__ import annotations

import random

import pytest
import torch

from engine.tokens.grammar import NoteGrammar
from engine.events import AI, PERFORMER, Note
from engine.model.sampling import Sampling
from engine.duet.context import PLAY_ROOM_TOKENS, TRAINED_TOKENS, ContextStream
from engine.tokens.decoder import IncrementalDecoder


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    from engine.model.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint, warmup=False).model


def line(start_s: float, pitches, player=PERFORMER, step_s=0.25):
    return [Note(start_s + i * step_s, start_s + i * step_s + 0.2, p, 80, player) for i, p in enumerate(pitches)]


def decoded_keys(stream: ContextStream, tokenizer) -> list[tuple[int, int, int]]:
    decoder = IncrementalDecoder(tokenizer, start_s=stream.origin_s)
    notes = decoder.feed_all(stream.cache.token_ids())
    assert decoder.problem_count == 0
    return [(round((n.start_s - stream.origin_s) / tokenizer.tick_s), n.player, n.pitch) for n in notes]


def assert_exact(stream: ContextStream, model, tokenizer) -> None:
    """The cache is what a fresh prefill of its tokens gives, and they decode to its notes."""
    stream.flush()
    assert decoded_keys(stream, tokenizer) == stream.keys()
    fresh = model.new_cache()
    logits = model.prefill(stream.cache.token_ids(), fresh)
    torch.testing.assert_close(stream.cache.last_logits, logits, atol=1e-4, rtol=1e-4)


def test_sync_appends_only_what_is_new(model, tokenizer):
    stream = ContextStream(model, tokenizer, context_s=10.0)
    first = line(0.0, [60, 62, 64, 65])
    stream.sync(first, 1.0, None)
    assert stream.rebuilds == 1
    assert_exact(stream, model, tokenizer)
    more = first + line(1.0, [67, 69], player=AI)
    appended = stream.sync(more, 2.0, None)
    assert stream.rebuilds == 1 and 0 < appended <= 2 * 5  # two notes: shift + 4 tokens each at most
    assert_exact(stream, model, tokenizer)
    assert stream.sync(more, 2.0, None) == 0  # nothing new


def test_sync_rolls_back_to_the_first_difference(model, tokenizer):
    stream = ContextStream(model, tokenizer, context_s=10.0)
    base = line(0.0, [60, 62, 64])
    ai = line(1.0, [72, 74, 76, 77], player=AI)
    stream.sync(base + ai, 2.0, None)
    assert_exact(stream, model, tokenizer)
    # The performer's late note lands between the AI's; one AI note was never played.
    late = Note(1.3, 1.5, 55, 70, PERFORMER)
    revised = base + [late] + [n for n in ai if n.pitch != 76]
    stream.sync(revised, 2.0, None)
    assert stream.rebuilds == 1
    assert_exact(stream, model, tokenizer)
    assert [k[2] for k in stream.keys()] == [60, 62, 64, 72, 74, 55, 77]


def test_play_enters_on_the_cue_and_its_notes_sync_without_rollback(model, tokenizer):
    stream = ContextStream(model, tokenizer, context_s=10.0)
    grammar = NoteGrammar(tokenizer, (AI,))
    context = line(0.0, [60, 62, 64, 65])
    stream.sync(context, 1.337, None)
    played = stream.play(1.337, 2.5, Sampling(temperature=1.0, top_k=20), grammar,
                         generator=torch.Generator().manual_seed(3), enter=True)
    assert played.notes and played.notes[0].start_s == pytest.approx(1.337, abs=1e-9)
    assert all(n.player == AI and 1.337 <= n.start_s < 2.5 for n in played.notes)
    length = stream.length
    assert stream.sync(context + played.notes, 2.5, None) == 0 and stream.length == length
    # The answer was cut short: its unplayed notes leave the context.
    kept = [n for n in played.notes if n.start_s < 1.6]
    stream.sync(context + kept, 2.5, None)
    assert_exact(stream, model, tokenizer)
    assert len(stream.keys()) == len(context) + len(kept)


def test_the_window_slides_by_rebuilding(model, tokenizer):
    rng = random.Random(0)
    stream = ContextStream(model, tokenizer, context_s=10.0)
    notes: list[Note] = []
    for bar in range(60):  # a dense minute: ~8 notes a second
        t = bar * 1.0
        notes += [Note(t + i * 0.125, t + i * 0.125 + 0.1, rng.randint(40, 90), 80, bar % 2) for i in range(8)]
        stream.sync(notes, t + 1.0, None)
        assert stream.length <= TRAINED_TOKENS - PLAY_ROOM_TOKENS  # within what the model was trained on
    assert stream.rebuilds >= 2
    assert stream.origin_s > 30.0  # the context follows the music
    assert_exact(stream, model, tokenizer)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stream_on_cuda_fp16_syncs_rolls_back_and_plays(model, tokenizer):
    import copy

    gpu = copy.deepcopy(model).to("cuda", torch.float16)
    stream = ContextStream(gpu, tokenizer, context_s=10.0)
    base, ai = line(0.0, [60, 62, 64]), line(1.0, [72, 74, 76], player=AI)
    stream.sync(base + ai, 2.0, None)
    stream.sync(base + [Note(1.3, 1.5, 55, 70, PERFORMER)] + ai[:1], 2.0, None)
    stream.flush()
    assert stream.cache.kv.is_cuda and decoded_keys(stream, tokenizer) == stream.keys()
    fresh = gpu.new_cache()
    logits = gpu.prefill(stream.cache.token_ids(), fresh)
    torch.testing.assert_close(stream.cache.last_logits.float(), logits.float(), atol=2e-2, rtol=2e-2)
    played = stream.play(2.0, 3.0, Sampling(temperature=1.0, top_k=20), NoteGrammar(tokenizer, (AI,)),
                         generator=torch.Generator().manual_seed(0), enter=True)
    assert played.notes and played.notes[0].start_s == pytest.approx(2.0)
