"""Training examples and the pre-training loop on a tiny corpus made in code."""
from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.events import AI, PERFORMER, Note
from engine.tokens.conditions import GENRES
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
    sources = {"hannds": {"files": 1, "hours": 0.01, "notes": 10}}
    (tmp_path / "manifest.json").write_text(json.dumps({"pieces": pieces, "sources": sources}))
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
    from engine.tokens.tokenizer import JamTokenizer

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
    from engine.tokens.tokenizer import JamTokenizer
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
    stopped = train(new_hf_model(mcfg, seed=1), train_x, val_x, tok.pad_id,
                    LoopConfig(max_steps=30, batch_size=4, eval_every=3, eval_batches=2, warmup_steps=2, patience=1,
                               lr=0.0), tmp_path / "ckpt")
    assert stopped.stopped_because == "early stop" and stopped.step < 30
    again = train(new_hf_model(mcfg, seed=1), train_x, val_x, tok.pad_id,
                  LoopConfig(max_steps=30, batch_size=4, eval_every=3, eval_batches=2, patience=1, lr=0.0),
                  tmp_path / "ckpt")
    assert again.step == stopped.step  # finished: nothing to do
    annealed = train(new_hf_model(mcfg, seed=1), train_x, val_x, tok.pad_id,
                     LoopConfig(max_steps=30, batch_size=4, eval_every=3, eval_batches=2, patience=1, lr=0.0,
                                reset_patience=True), tmp_path / "ckpt")
    assert annealed.step == stopped.step + 3 and annealed.stopped_because == "early stop"


def test_pretraining_early_stops_on_validation_rows_from_every_file():
    from engine.model.checkpoint import new_hf_model
    from engine.model.config import ModelConfig
    from engine.training.distributed import ProcessGroup
    from engine.training.loop import LoopConfig, _evaluate, evaluate, evenly_spaced

    torch.manual_seed(0)
    mcfg = ModelConfig(vocab_size=40, n_layer=1, n_embd=16, n_head=2, n_kv_head=2, intermediate_size=32, max_len=64)
    model = new_hf_model(mcfg, seed=0)
    # 40 windows of two "files": the first 20 all one token, the last 20 random.
    rows = np.concatenate([np.full((20, 12), 3), np.random.default_rng(0).integers(1, 40, (20, 12))]).astype(np.uint16)
    cfg = LoopConfig(batch_size=4, eval_batches=2)
    val = _evaluate(model, rows, 0, cfg, ProcessGroup())
    assert val == pytest.approx(evaluate(model, evenly_spaced(rows, 8), 0, 4))
    assert val != pytest.approx(evaluate(model, rows[:8], 0, 4))  # not the first file alone


def _pretrain_args(corpus, tmp_path, device):
    return ["--corpus", str(corpus), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "model"),
            "--layers", "1", "--width", "32", "--heads", "2", "--ff", "64", "--seq-len", "64", "--batch", "4",
            "--steps", "6", "--eval-every", "3", "--eval-batches", "2", "--warmup", "2", "--jobs", "1",
            "--window-s", "2", "--stride-s", "1",
            "--fresh", "--json", "--device", device]


def _check_pretrain_export(tmp_path, capsys):
    from engine.model.checkpoint import load_checkpoint
    from engine.tokens.tokenizer import JamTokenizer

    done = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"pretrain-done"' in line]
    assert len(done) == 1 and done[0]["step"] == 6 and done[0]["stopped"] == "max steps"
    state = json.loads((tmp_path / "model" / "training_state.json").read_text())
    assert state["full_val_loss"] == pytest.approx(done[0]["full_val_loss"])
    assert state["runs"] and state["runs"][-1]["to_step"] == 6
    card = (tmp_path / "model" / "README.md").read_text()
    assert "the whole validation split" in card and "stopped: max steps" in card
    from safetensors.torch import load_file

    load_checkpoint(tmp_path / "model", expected_tokenizer=JamTokenizer().to_dict(), warmup=False)
    tensors = load_file(tmp_path / "model" / "model.safetensors")
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors.values())
    return state


def test_pretrain_main_exports_best_with_full_validation(tiny_corpus, tmp_path, capsys):
    from engine.training import pretrain

    assert pretrain.main(_pretrain_args(tiny_corpus, tmp_path, "cpu")) == 0
    state = _check_pretrain_export(tmp_path, capsys)
    assert "CPU" in state["runs"][-1]["device"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pretrain_on_cuda_exports_fp32_cpu_model(tiny_corpus, tmp_path, capsys):
    from engine.training import pretrain

    assert pretrain.main(_pretrain_args(tiny_corpus, tmp_path, "cuda")) == 0
    state = _check_pretrain_export(tmp_path, capsys)
    assert state["runs"][-1]["device"] == torch.cuda.get_device_name()


def test_build_split_names_the_source_of_every_row(tiny_corpus):
    from engine.tokens.tokenizer import JamTokenizer

    cfg = ExampleConfig(seq_len=64, window_s=2.0, stride_s=0.5, copies=4)
    train, stats = build_split(tiny_corpus, "train", JamTokenizer(), cfg, jobs=1)
    assert len(stats["row_sources"]) == len(train)
    assert sorted(set(stats["row_sources"])) == ["hannds", "mma_jazz"]


def test_mix_sources_gives_each_source_its_share():
    from engine.training.data import mix_sources, parse_mix

    examples = np.arange(100)[:, None].repeat(3, axis=1)
    sources = ["score"] * 90 + ["hannds"] * 10  # the corpus as built: scores outnumber performances
    mixed = mix_sources(examples, sources, parse_mix("hannds=3,score=1"), seed=0)
    assert len(mixed) == 100
    from_hannds = (mixed[:, 0] >= 90).sum()
    assert from_hannds == 75
    assert (mix_sources(examples, sources, parse_mix("hannds=3,score=1"), seed=0) == mixed).all()
    with pytest.raises(ValueError, match="mma_jazz"):
        mix_sources(examples, sources, {"mma_jazz": 1.0})
    for bad in ("hannds", "hannds=x", "hannds=-1", "hannds=0", "=1"):
        with pytest.raises(ValueError, match="--mix"):
            parse_mix(bad)


def test_pretrain_mix_and_init_start_from_a_checkpoint(tiny_corpus, tmp_path, capsys):
    from engine.training import pretrain

    first = tmp_path / "first"
    args = _pretrain_args(tiny_corpus, tmp_path, "cpu")
    assert pretrain.main([*args, "--out", str(first)]) == 0
    capsys.readouterr()
    second = tmp_path / "second"
    assert pretrain.main([*args, "--out", str(second), "--work", str(tmp_path / "work2"), "--init", str(first),
                          "--mix", "hannds=0.7,mma_jazz=0.3"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["event"] == "pretrain-done"
    card = (second / "README.md").read_text()
    assert "| hannds | 1 | 0.01 | 10 | 70% |" in card
    assert pretrain.main([*args, "--out", str(tmp_path / "third"), "--mix", "nothing=1"]) == 2
    assert "nothing" in capsys.readouterr().err


def test_touch_augmentation_varies_the_velocities_of_training_windows_only(tmp_path):
    from engine.tokens.tokenizer import VELOCITY, JamTokenizer
    from engine.training.data import piece_examples

    tokenizer, path = JamTokenizer(), write_two_tracks(tmp_path)
    entry = {"id": "p", "source": "performance", "tags": {}}

    def velocities(cfg, *, train):
        windows, _ = piece_examples(path, entry, tokenizer, cfg, train=train, seed=3)
        return [t for ids in windows for t in ids if tokenizer.kind(t) == VELOCITY]

    plain = ExampleConfig(seq_len=64, window_s=2.0, stride_s=1.0, copies=4, max_transpose=0, stretch_range=(1, 1))
    touched = replace(plain, velocity_scale_range=(0.5, 1.5), velocity_shift=20.0)
    assert velocities(touched, train=True) != velocities(plain, train=True)
    assert velocities(touched, train=True) == velocities(touched, train=True)  # seeded
    assert velocities(touched, train=False) == velocities(plain, train=False)  # evaluation is never augmented


def test_any_genre_names_every_genre_across_training_windows_and_none_in_evaluation(tmp_path):
    from engine.tokens.tokenizer import JamTokenizer
    from engine.training.data import piece_examples

    tokenizer, path = JamTokenizer(), write_two_tracks(tmp_path)
    entry = {"id": "p", "source": "performance", "tags": {"genre": "jazz comping"}}
    cfg = ExampleConfig(seq_len=64, window_s=3.0, stride_s=0.25, copies=16, condition_drop_p=0.0, any_genre=True)

    def genres(config, *, train):
        windows, _ = piece_examples(path, entry, tokenizer, config, train=train, seed=1)
        return [tokenizer.vocab[t] for ids in windows for t in ids if tokenizer.vocab[t].startswith("Genre_")]

    assert {g.removeprefix("Genre_") for g in genres(cfg, train=True)} == set(GENRES)
    assert set(genres(cfg, train=False)) == {"Genre_jazz-comping"}
    assert set(genres(replace(cfg, any_genre=False), train=True)) == {"Genre_jazz-comping"}
