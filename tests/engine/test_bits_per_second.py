"""Bits per second of music: the held-out figure that compares models."""
from __future__ import annotations

import math

import pytest
import torch

from engine.model.checkpoint import new_hf_model
from engine.model.config import ModelConfig
from engine.tokens.tokenizer import JamTokenizer
from engine.training.bits_per_second import music_fit, music_windows
from tests.midi_fixtures import write_scale


@pytest.fixture(scope="module")
def tokenizer():
    return JamTokenizer()


def _model(tokenizer, max_len=256, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2,
                         intermediate_size=48, max_len=max_len)
    return new_hf_model(config, seed=seed).eval()


def test_bits_per_second_is_total_nll_over_seconds(tokenizer, tmp_path):
    files = [write_scale(tmp_path, "a.mid", notes=15), write_scale(tmp_path, "b.mid", notes=15)]
    fit = music_fit(_model(tokenizer), tokenizer, files, window_s=2.0)
    assert fit.files == 2 and fit.windows > 2 and fit.truncated == 0
    assert fit.bits_per_s == pytest.approx(fit.nll_per_token * fit.tokens * math.log2(math.e) / fit.music_s, rel=0.01)
    assert music_fit(_model(tokenizer), tokenizer, files, window_s=2.0) == fit  # same tokens, same figure


def test_each_files_figure_is_its_share_of_the_whole(tokenizer, tmp_path):
    files = [write_scale(tmp_path, "a.mid", notes=15), write_scale(tmp_path, "b.mid", notes=9, step_s=0.5)]
    model = _model(tokenizer)
    fit = music_fit(model, tokenizer, files, window_s=2.0)
    assert [f.file for f in fit.per_file] == [str(p) for p in files]
    assert sum(f.windows for f in fit.per_file) == fit.windows and sum(f.tokens for f in fit.per_file) == fit.tokens
    # Pooled, the files' bits weigh by their seconds: the whole is their time-weighted mean.
    pooled = sum(f.bits_per_s * f.music_s for f in fit.per_file) / sum(f.music_s for f in fit.per_file)
    assert fit.bits_per_s == pytest.approx(pooled, abs=0.02)
    # The first file alone is the same windows (a file's hands split by a seed of its place in the list).
    assert fit.per_file[0].bits_per_s == music_fit(model, tokenizer, files[:1], window_s=2.0).bits_per_s


def test_each_kind_of_tokens_bits_add_up_to_the_whole(tokenizer, tmp_path):
    files = [write_scale(tmp_path, "a.mid", notes=15), write_scale(tmp_path, "b.mid", notes=9, step_s=0.5)]
    fit = music_fit(_model(tokenizer), tokenizer, files, window_s=2.0)
    # A note writes its player, pitch, velocity and length; windows open with their conditions.
    assert {"players", "pitches", "velocities", "note lengths", "conditions"} <= set(fit.by_kind)
    assert all(bits > 0 for bits in fit.by_kind.values())
    assert sum(fit.by_kind.values()) == pytest.approx(fit.bits_per_s, abs=0.01 * len(fit.by_kind))


def test_the_context_bins_share_out_the_whole(tokenizer, tmp_path):
    files = [write_scale(tmp_path, "a.mid", notes=15, step_s=0.1), write_scale(tmp_path, "b.mid", notes=9)]
    fit = music_fit(_model(tokenizer), tokenizer, files, window_s=4.0)
    bins = fit.by_context
    # 15 notes in one window write more than 64 tokens: two bins, the second ending at the last position.
    assert [(b.first, b.last) for b in bins] == [(1, 64), (65, 255)]
    assert sum(b.tokens for b in bins) == fit.tokens and all(b.tokens > 0 for b in bins)
    assert sum(b.bits_per_s for b in bins) == pytest.approx(fit.bits_per_s, abs=0.01 * len(bins))
    assert sum(b.nll_per_token * b.tokens for b in bins) == pytest.approx(fit.nll_per_token * fit.tokens, rel=1e-3)
    # A shorter model: one bin, up to what it reads before its last position.
    short = music_fit(_model(tokenizer, max_len=8), tokenizer, files, window_s=4.0)
    assert [(b.first, b.last, b.tokens) for b in short.by_context] == [(1, 7, short.tokens)]


def test_a_model_that_learned_the_music_scores_fewer_bits(tokenizer, tmp_path):
    files = [write_scale(tmp_path, "a.mid", notes=15)]
    model = _model(tokenizer)
    before = music_fit(model, tokenizer, files, window_s=2.0)
    windows, _, _ = music_windows(files, tokenizer, max_len=256, window_s=2.0)
    batch = torch.from_numpy(windows)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    from engine.training.loop import lm_loss

    for _ in range(60):
        loss, _ = lm_loss(model, batch, tokenizer.pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = music_fit(model, tokenizer, files, window_s=2.0)
    assert after.bits_per_s < 0.5 * before.bits_per_s


def test_windows_longer_than_the_context_are_counted(tokenizer, tmp_path):
    files = [write_scale(tmp_path, "a.mid", notes=15)]
    _, _, truncated = music_windows(files, tokenizer, max_len=8, window_s=4.0)
    assert truncated > 0
    fit = music_fit(_model(tokenizer, max_len=8), tokenizer, files, window_s=4.0)
    assert fit.truncated == truncated and fit.tokens > 0


def test_model_fit_command_prints_bits_per_second(tmp_path, capsys):
    from engine.training import bits_per_second

    assert bits_per_second.main(["--corpus", str(tmp_path / "none")]) == 2
    assert "not a built corpus" in capsys.readouterr().err
