"""Training examples and the pre-training loop on a tiny corpus made in code."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from engine.events import AI, PERFORMER, Note
from engine.training.data import ExampleConfig, assign_players, build_split, genre_of
from tests.midi_fixtures import write_chords_with_pedal, write_scale, write_two_tracks


@pytest.fixture
def tiny_corpus(tmp_path):
    pieces = []
    for split, maker, source, genre in [("train", write_two_tracks, "hannds", "classical piano"),
                                        ("train", write_chords_with_pedal, "mma_jazz", "jazz comping"),
                                        ("val", write_scale, "score", "folk")]:
        (tmp_path / split).mkdir(exist_ok=True)
        path = maker(tmp_path / split)
        pieces.append({"id": path.stem, "split": split, "source": source, "tags": {"genre": genre},
                       "path": f"{split}/{path.name}"})
    (tmp_path / "manifest.json").write_text(json.dumps({"pieces": pieces}))
    return tmp_path


def test_genre_mapping():
    assert genre_of({"tags": {"genre": "jazz comping"}}) == "jazz-comping"
    assert genre_of({"tags": {"genre": "classical"}}) == "classical-piano"
    assert genre_of({"tags": {"genre": "folk"}}) == "folk"
    assert genre_of({"tags": {}}) == "unknown"


def test_assign_players_gives_both_roles():
    left = [Note(0.0, 1.0, 40, 80), Note(1.0, 2.0, 43, 80)]
    right = [Note(0.0, 0.5, 72, 90)]
    for seed in range(10):
        notes = assign_players([left, right], random.Random(seed))
        assert {n.player for n in notes} == {PERFORMER, AI}
        assert len(notes) == 3
        assert len({n.player for n in notes if n.pitch < 60}) == 1  # a hand stays with one player


def test_build_split_examples(tiny_corpus):
    from engine.tokenizer import JamTokenizer

    tok = JamTokenizer()
    cfg = ExampleConfig(seq_len=64, window_s=2.0, stride_s=1.0, copies=2)
    train, stats = build_split(tiny_corpus, "train", tok, cfg, jobs=1)
    assert train.dtype == np.uint16 and train.shape[1] == 65
    assert stats["failed"] == [] and stats["examples"] == len(train) > 0
    assert (train[:, 0] == tok.bos_id).all()
    assert stats["tokens"] == int((train != tok.pad_id).sum())
    val, vstats = build_split(tiny_corpus, "val", tok, cfg, jobs=1)
    assert vstats["pieces"] == 1 and len(val) > 0
    again, _ = build_split(tiny_corpus, "val", tok, cfg, jobs=1)
    assert (again == val).all()  # deterministic


def test_loop_trains_exports_and_resumes(tiny_corpus, tmp_path):
    from engine.model.checkpoint import load_checkpoint, new_hf_model, save_checkpoint
    from engine.model.config import ModelConfig
    from engine.tokenizer import JamTokenizer
    from engine.training.loop import LoopConfig, train

    tok = JamTokenizer()
    cfg = ExampleConfig(seq_len=64, window_s=2.0, stride_s=1.0, copies=2)
    train_x, _ = build_split(tiny_corpus, "train", tok, cfg, jobs=1)
    val_x, _ = build_split(tiny_corpus, "val", tok, cfg, jobs=1)
    mcfg = ModelConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2,
                       intermediate_size=64, max_len=128)
    model = new_hf_model(mcfg, seed=0)
    loop = LoopConfig(max_steps=6, batch_size=4, eval_every=3, eval_batches=2, warmup_steps=2)
    exported = []
    state = train(model, train_x, val_x, tok.pad_id, loop, tmp_path / "ckpt",
                  on_best=lambda m, st: exported.append(save_checkpoint(tmp_path / "out", m, tok.to_dict())))
    assert state.step == 6 and len(state.history) == 2
    assert exported
    live = load_checkpoint(tmp_path / "out", expected_tokenizer=tok.to_dict(), warmup=False)
    assert live.config == mcfg
    resumed = train(new_hf_model(mcfg, seed=1), train_x, val_x, tok.pad_id,
                    LoopConfig(max_steps=9, batch_size=4, eval_every=3, eval_batches=2, warmup_steps=2),
                    tmp_path / "ckpt")
    assert resumed.step == 9 and len(resumed.history) == 3
